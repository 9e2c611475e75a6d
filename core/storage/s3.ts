// S3 storage through the real @aws-sdk/client-s3. Configuration comes from the usual AWS environment
// variables (region, credentials, AWS_ENDPOINT_URL[_S3]) plus S3_ENDPOINT for S3-compatible servers and
// S3_CONNECT_TIMEOUT_MS / S3_RESPONSE_TIMEOUT_MS, so a silent endpoint fails instead of hanging.

import { PassThrough, Readable } from 'node:stream';
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
import { describeS3Failure } from './s3-errors.ts';
import { chunksByteLength, type ObjectInfo, type Storage, type WriteBody } from './types.ts';

/** Objects larger than this are written with a multipart upload. */
const MULTIPART_THRESHOLD = 16 * 1024 * 1024;
const PART_SIZE = 8 * 1024 * 1024;

export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m) throw new StorageError(uri, 'not an s3:// URI');
  return { bucket: m[1], key: m[2] };
}

export interface S3Timeouts {
  /** Milliseconds to establish a TCP connection. */
  connectMs: number;
  /** Milliseconds the socket may stay silent while waiting for (or reading) a response. */
  responseMs: number;
}

/** Defaults: generous for a real S3, short enough that a dead endpoint fails in minutes, not never. */
export const DEFAULT_S3_TIMEOUTS: S3Timeouts = { connectMs: 5_000, responseMs: 30_000 };

function positiveMs(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0)
    throw new StorageError('s3://', `${name} must be a positive number of milliseconds, got "${v}"`);
  return n;
}

export function s3TimeoutsFromEnv(env: NodeJS.ProcessEnv = process.env): S3Timeouts {
  return {
    connectMs: positiveMs(env, 'S3_CONNECT_TIMEOUT_MS', DEFAULT_S3_TIMEOUTS.connectMs),
    responseMs: positiveMs(env, 'S3_RESPONSE_TIMEOUT_MS', DEFAULT_S3_TIMEOUTS.responseMs),
  };
}

export function s3ClientFromEnv(env: NodeJS.ProcessEnv = process.env): S3Client {
  const endpoint = env.S3_ENDPOINT ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  const pathStyle = env.S3_FORCE_PATH_STYLE ? env.S3_FORCE_PATH_STYLE !== 'false' : endpoint !== undefined;
  const timeouts = s3TimeoutsFromEnv(env);
  return new S3Client({
    region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    endpoint,
    forcePathStyle: pathStyle,
    maxAttempts: Number(env.AWS_MAX_ATTEMPTS ?? 5),
    // socketTimeout is an inactivity limit: a slow large download is fine, a server that stops answering is not.
    // Each of the SDK's attempts gets these limits.
    requestHandler: { connectionTimeout: timeouts.connectMs, socketTimeout: timeouts.responseMs },
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

/** Chunks as one buffer when a single PUT takes them (it is retried), else as a stream for a multipart upload. */
function chunksBody(chunks: readonly Uint8Array[]): Uint8Array | Readable {
  return chunksByteLength(chunks) < MULTIPART_THRESHOLD ? Buffer.concat(chunks) : Readable.from(chunks);
}

export class S3Storage implements Storage {
  constructor(readonly client: S3Client = s3ClientFromEnv()) {}

  /** The endpoint as a user configured it, for messages. */
  private async endpointName(): Promise<string> {
    const provider = this.client.config.endpoint;
    if (!provider) return `AWS (region ${await this.client.config.region().catch(() => '?')})`;
    const ep = await provider().catch(() => undefined);
    return ep ? `${ep.protocol}//${ep.hostname}${ep.port ? `:${ep.port}` : ''}` : 'the configured endpoint';
  }

  /** One request with the transient-failure retries; a failure becomes a StorageError that says what to do. */
  private async request<T>(what: string, uri: string, send: () => Promise<T>): Promise<T> {
    try {
      return await withRetry(`${what} ${uri}`, send);
    } catch (err) {
      const sdkError = (err as { cause?: unknown }).cause ?? err;
      throw describeS3Failure(sdkError, what, uri, await this.endpointName());
    }
  }

  /** True for the error `request` throws when the object does not exist. */
  private static notFound(err: unknown): boolean {
    const cause = (err as { cause?: { $metadata?: { httpStatusCode?: number }; name?: string } }).cause;
    return cause?.$metadata?.httpStatusCode === 404 || cause?.name === 'NotFound';
  }

  async *list(prefixUri: string): AsyncIterable<ObjectInfo> {
    const { bucket, key: prefix } = parseS3Uri(prefixUri);
    let token: string | undefined;
    do {
      const page = await this.request('list', prefixUri, () =>
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
      const h = await this.request('head', uri, () =>
        this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })),
      );
      return { uri, size: h.ContentLength ?? 0, etag: h.ETag?.replaceAll('"', '') };
    } catch (err) {
      if (S3Storage.notFound(err)) return undefined;
      throw err;
    }
  }

  async readRange(uri: string, start: number, end: number): Promise<Uint8Array> {
    if (end <= start) return new Uint8Array(0);
    const { bucket, key } = parseS3Uri(uri);
    return this.request(`read bytes ${start}-${end - 1}`, uri, async () => {
      const r = await this.client.send(
        new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${end - 1}` }),
      );
      return bodyToBytes(r.Body, uri);
    });
  }

  async readAll(uri: string): Promise<Uint8Array> {
    const { bucket, key } = parseS3Uri(uri);
    return this.request('read', uri, async () => {
      const r = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return bodyToBytes(r.Body, uri);
    });
  }

  async createReadStream(uri: string, range?: { start: number; end: number }): Promise<Readable> {
    if (range && range.end <= range.start) return Readable.from([]);
    const { bucket, key } = parseS3Uri(uri);
    const r = await this.request('open', uri, () =>
      this.client.send(
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          Range: range ? `bytes=${range.start}-${range.end - 1}` : undefined,
        }),
      ),
    );
    if (!(r.Body instanceof Readable)) throw new StorageError(uri, 'response body is not a Node stream');
    // A server that stalls mid-body trips the response timeout on the stream itself: say so as for a request.
    const body = r.Body;
    const out = new PassThrough();
    body.on('error', (err: unknown) => {
      this.endpointName().then((endpoint) => out.destroy(describeS3Failure(err, 'read', uri, endpoint)));
    });
    out.on('close', () => body.destroy());
    return body.pipe(out);
  }

  async writeAtomic(uri: string, body: WriteBody): Promise<ObjectInfo> {
    const { bucket, key } = parseS3Uri(uri);
    const bytes =
      typeof body === 'string'
        ? Buffer.from(body)
        : Array.isArray(body)
          ? chunksBody(body)
          : (body as Uint8Array | Readable);
    if (bytes instanceof Uint8Array && bytes.byteLength < MULTIPART_THRESHOLD) {
      // A single PUT is atomic on S3: readers see the old object or the whole new one.
      await this.request('write', uri, () =>
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
      await upload.done().catch(async (err: unknown) => {
        throw describeS3Failure(err, 'multipart upload', uri, await this.endpointName());
      });
    }
    const info = await this.stat(uri);
    if (!info) throw new StorageError(uri, 'object not visible after write');
    return info;
  }

  async delete(uri: string): Promise<void> {
    const { bucket, key } = parseS3Uri(uri);
    await this.request('delete', uri, () =>
      this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })),
    );
  }
}
