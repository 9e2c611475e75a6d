// The storage interface: one API over local paths, file:// URIs and s3://bucket/prefix.
import type { Readable } from 'node:stream';

export interface ObjectInfo {
  /** Canonical URI: an absolute local path, or s3://bucket/key. */
  uri: string;
  size: number;
  /** S3 ETag, when the backend has one. */
  etag?: string;
  /** Modification time in ms, for local files. */
  mtimeMs?: number;
}

/** An object's bytes: in one buffer, as a list of buffers in order (written without joining them), or a stream. */
export type WriteBody = Uint8Array | readonly Uint8Array[] | string | Readable;

/** The byte length of an object held as a list of buffers. */
export function chunksByteLength(chunks: readonly Uint8Array[]): number {
  return chunks.reduce((n, c) => n + c.byteLength, 0);
}

export interface Storage {
  /** Every object under a prefix (recursive), in lexicographic order of URI. */
  list(prefixUri: string): AsyncIterable<ObjectInfo>;
  /** Size and version of one object, or undefined when it does not exist. */
  stat(uri: string): Promise<ObjectInfo | undefined>;
  /**
   * Bytes [start, end) of an object. `into` (end - start bytes) is a buffer the caller recycles: a backend that can
   * read straight into it fills it and returns it; one that cannot returns its own bytes.
   */
  readRange(uri: string, start: number, end: number, into?: Uint8Array): Promise<Uint8Array>;
  /** The whole object; only for objects known to be small. */
  readAll(uri: string): Promise<Uint8Array>;
  /** A byte stream of the object, optionally of bytes [start, end). */
  createReadStream(uri: string, range?: { start: number; end: number }): Promise<Readable>;
  /** Write an object so that readers see either nothing or all of it (temp then commit / single PUT / multipart). */
  writeAtomic(uri: string, body: WriteBody): Promise<ObjectInfo>;
  delete(uri: string): Promise<void>;
}
