// Shared setup for the end-to-end fleet tests: demo data uploaded to a loopback S3 server, the demo spec pointed at
// it, `mixforge worker` processes, and the in-process reference build of the same spec and inputs.
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { joinUri, storageFor } from '../../core/storage/index.ts';
import { generateDemoData } from '../../demo/generate.ts';
import { shippedSpecPath } from '../../demo/spec-overrides.ts';
import type { RedisServerOptions } from '../../dev/redis-server.ts';
import { loadSpec } from '../../manifests/spec.ts';
import { type BuildContext, makeBuildContext } from '../../pipelines/context.ts';
import { setUpInBefore } from '../helpers/hooks.ts';
import { startS3, type TestS3 } from '../helpers/s3-server.ts';
import { spawnWorker, type WorkerProcess } from './fleet.ts';
import { type PrivateQueues, usePrivateQueues } from './private-queues.ts';

const CLI = join(import.meta.dirname, '..', '..', 'cli', 'main.ts');

/** Generates the demo data and uploads it under `dataUri` (an s3:// prefix). */
export async function uploadDemoData(dataUri: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mixforge-demo-data-'));
  try {
    await generateDemoData(dir);
    const files = (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
    await Promise.all(
      files.map(async (e) => {
        const path = join(e.parentPath, e.name);
        const uri = joinUri(dataUri, relative(dir, path));
        await storageFor(uri).writeAtomic(uri, await readFile(path));
      }),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function demoContext(dataUri: string, out: string): Promise<BuildContext> {
  const spec = await loadSpec(shippedSpecPath('demo'), { env: { MIXFORGE_DEMO_DATA: dataUri }, set: [] });
  return makeBuildContext(spec, out);
}

/** `mixforge worker` as its own process, with short lock/stalled settings so a killed worker's job returns fast. */
export function startCliWorker(
  name: string,
  redisUrl: string,
  env: Record<string, string>,
): Promise<WorkerProcess> {
  return spawnWorker(
    name,
    CLI,
    [
      'worker',
      '--redis',
      redisUrl,
      '--name',
      name,
      '--lock-duration',
      '2000',
      '--stalled-interval',
      '500',
      '--max-stalled',
      '20',
    ],
    { env, readyText: /serving mixforge-/ },
  );
}

export interface DemoFleet extends Omit<PrivateQueues, 'root'> {
  /** Holds the buckets `data` (the demo data, under `s3://data/demo`) and `out`. */
  readonly s3: TestS3;
  /** Starts a `mixforge worker` on the suite's Redis and S3 (not added to `fleet`). */
  startWorker(name: string): Promise<WorkerProcess>;
}

/**
 * Registers before/after hooks in the enclosing describe: a loopback S3 server holding the demo data and, started
 * alongside, a private Redis with BuildQueues on it (see usePrivateQueues); after, the fleet, Redis and S3 stop.
 */
export function useDemoFleet(redis?: RedisServerOptions): DemoFleet {
  let s3: TestS3 | undefined;
  const q = usePrivateQueues({
    redis,
    setUp: async () => {
      s3 = await startS3(['data', 'out']);
      await uploadDemoData('s3://data/demo');
    },
    tearDown: async () => {
      await s3?.stop();
    },
  });
  return {
    get s3() {
      return setUpInBefore(s3, 'S3');
    },
    get redis() {
      return q.redis;
    },
    get queues() {
      return q.queues;
    },
    fleet: q.fleet,
    startWorker: (name) => startCliWorker(name, q.redis.url, setUpInBefore(s3, 'S3').env),
  };
}

/** sha256 of every object under a build's output (shards, quarantine, manifest), keyed by path below `out`. */
export async function outputDigests(out: string): Promise<Map<string, string>> {
  const s = storageFor(out);
  const m = new Map<string, string>();
  for await (const o of s.list(`${out}/`)) {
    const rel = o.uri.slice(out.length + 1);
    if (rel.startsWith('_build/')) continue;
    m.set(
      rel,
      createHash('sha256')
        .update(await s.readAll(o.uri))
        .digest('hex'),
    );
  }
  return m;
}
