// Starts a real S3-protocol server (s3rver) on a free loopback port for tests, and an SDK client for it.

import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { setS3Storage } from '../../core/storage/index.ts';
import { S3Storage } from '../../core/storage/s3.ts';

export interface TestS3 {
  endpoint: string;
  client: S3Client;
  storage: S3Storage;
  env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startS3(buckets: string[] = ['test']): Promise<TestS3> {
  const dir = await mkdtemp(join(tmpdir(), 'mixforge-s3-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    configureBuckets: buckets.map((name) => ({ name, configs: [] })),
  });
  const addr = (await server.run()) as AddressInfo;
  const endpoint = `http://127.0.0.1:${addr.port}`;
  const env = {
    S3_ENDPOINT: endpoint,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
  };
  const client = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const storage = new S3Storage(client);
  setS3Storage(storage);
  return {
    endpoint,
    client,
    storage,
    env,
    async stop() {
      client.destroy();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
