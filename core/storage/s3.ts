// S3 storage through the real @aws-sdk/client-s3. Configuration comes from the usual AWS environment
// variables (region, credentials, AWS_ENDPOINT_URL[_S3]) plus S3_ENDPOINT for S3-compatible servers.

import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { StorageError } from '../errors.ts';
import { withRetry } from './retry.ts';
import type { ObjectInfo, Storage, WriteBody } from './types.ts';

/** Objects larger than this are written with a multipart upload. */
const MULTIPART_THRESHOLD = 16 * 1024 * 1024;
const PART_SIZE = 8 * 1024 * 1024;

export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m) throw new StorageError(uri, 'not an s3:// URI');
  return { bucket: m[1], key: m[2] };
}

export function s3ClientFromEnv(env: NodeJS.ProcessEnv = process.env): S3Client {
  const endpoint = env.S3_ENDPOINT ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  const pathStyle = env.S3_FORCE_PATH_STYLE ? env.S3_FORCE_PATH_STYLE !== 'false' : endpoint !== undefined;
  return new S3Client({
    region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    endpoint,
    forcePathStyle: pathStyle,
    maxAttempts: Number(env.AWS_MAX_ATTEMPTS ?? 5),
    // S3-compatible servers (MinIO, s3rver, Ceph) do not all accept the newer default checksums.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

async function bodyToBytes(body: unknown, uri: string): Promise<Uint8Array> {
  const b = body as { transformToByteArray?: () => Promise<Uint8Array> } | undefined;
  if (!b?.transformToByteArray) throw new StorageError(uri, 'empty response body');
  return b.transformToByteArray();
}

export class S3Storage implements Storage {
  constructor(readonly client: S3Client = s3ClientFromEnv()) {}

  async *list(prefixUri: string): AsyncIterable<ObjectInfo> {
    const { bucket, key: prefix } = parseS3Uri(prefixUri);
    let token: string | undefined;
    do {
      const page = await withRetry(`list ${prefixUri}`, () =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        ),
      );
      for (const o of page.Contents ?? []) {
        if (!o.Key) continue;
        yield { uri: `s3://${bucket}/${o.Key}`, size: o.Size ?? 0, etag: o.ETag?.replaceAll('"', '') };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async stat(uri: string): Promise<ObjectInfo | undefined> {
    const { bucket, key } = parseS3Uri(uri);
    try {
      const h = await withRetry(`head ${uri}`, () =>
        this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })),
      );
      return { uri, size: h.ContentLength ?? 0, etag: h.ETag?.replaceAll('"', '') };
    } catch (err) {
      const cause = (err as { cause?: { $metadata?: { httpStatusCode?: number }; name?: string } }).cause;
      if (cause?.$metadata?.httpStatusCode === 404 || cause?.name === 'NotFound') return undefined;
      throw new StorageError(uri, (err as Error).message, { cause: err });
    }
  }

  async readRange(uri: string, start: number, end: number): Promise<Uint8Array> {
    if (end <= start) return new Uint8Array(0);
    const { bucket, key } = parseS3Uri(uri);
    return withRetry(`read ${uri} bytes ${start}-${end - 1}`, async () => {
      const r = await this.client.send(
        new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${end - 1}` }),
      );
      return bodyToBytes(r.Body, uri);
    });
  }

  async readAll(uri: string): Promise<Uint8Array> {
    const { bucket, key } = parseS3Uri(uri);
    return withRetry(`read ${uri}`, async () => {
      const r = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return bodyToBytes(r.Body, uri);
    });
  }

  async createReadStream(uri: string, range?: { start: number; end: number }): Promise<Readable> {
    if (range && range.end <= range.start) return Readable.from([]);
    const { bucket, key } = parseS3Uri(uri);
    const r = await withRetry(`open ${uri}`, () =>
      this.client.send(
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          Range: range ? `bytes=${range.start}-${range.end - 1}` : undefined,
        }),
      ),
    );
    if (!(r.Body instanceof Readable)) throw new StorageError(uri, 'response body is not a Node stream');
    return r.Body;
  }

  async writeAtomic(uri: string, body: WriteBody): Promise<ObjectInfo> {
    const { bucket, key } = parseS3Uri(uri);
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    if (bytes instanceof Uint8Array && bytes.byteLength < MULTIPART_THRESHOLD) {
      // A single PUT is atomic on S3: readers see the old object or the whole new one.
      await withRetry(`write ${uri}`, () =>
        this.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes })),
      );
    } else {
      // Multipart: the object only appears when CompleteMultipartUpload succeeds.
      const upload = new Upload({
        client: this.client,
        params: { Bucket: bucket, Key: key, Body: bytes },
        partSize: PART_SIZE,
        queueSize: 4,
        leavePartsOnError: false,
      });
      await upload.done().catch((err: unknown) => {
        throw new StorageError(uri, `multipart upload failed: ${(err as Error).message}`, { cause: err });
      });
    }
    const info = await this.stat(uri);
    if (!info) throw new StorageError(uri, 'object not visible after write');
    return info;
  }

  async delete(uri: string): Promise<void> {
    const { bucket, key } = parseS3Uri(uri);
    await withRetry(`delete ${uri}`, () =>
      this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })),
    );
  }
}
