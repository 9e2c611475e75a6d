// Routes a URI to its storage backend and expands globs. Local paths, file:// URIs and s3:// URIs.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import picomatch from 'picomatch';
import { StorageError } from '../errors.ts';
import { LocalStorage } from './local.ts';
import { S3Storage } from './s3.ts';
import type { ObjectInfo, Storage } from './types.ts';

export type { ObjectInfo, Storage, WriteBody } from './types.ts';

const local = new LocalStorage();
let s3: S3Storage | undefined;

export function isS3Uri(uri: string): boolean {
  return uri.startsWith('s3://');
}

/** Canonical form: absolute local path, or the s3:// URI unchanged. */
export function normaliseUri(uri: string): string {
  if (isS3Uri(uri)) return uri;
  if (uri.startsWith('file://')) return fileURLToPath(uri);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri))
    throw new StorageError(uri, 'unsupported URI scheme (use a path, file:// or s3://)');
  return resolve(uri);
}

export function storageFor(uri: string): Storage {
  if (isS3Uri(uri)) {
    s3 ??= new S3Storage();
    return s3;
  }
  return local;
}

/** Replace the S3 backend (tests point it at a loopback server). */
export function setS3Storage(storage: S3Storage): void {
  s3 = storage;
}

/** Join a base URI and a relative path with `/`. */
export function joinUri(base: string, ...parts: string[]): string {
  let out = base.replace(/\/+$/, '');
  for (const p of parts) out += `/${p.replace(/^\/+/, '')}`;
  return out;
}

export function dirnameUri(uri: string): string {
  const i = uri.replace(/\/+$/, '').lastIndexOf('/');
  return i <= 0 ? uri : uri.slice(0, i);
}

export function basenameUri(uri: string): string {
  return uri.replace(/\/+$/, '').slice(uri.replace(/\/+$/, '').lastIndexOf('/') + 1);
}

const GLOB_CHARS = /[*?[\]{}]/;

/**
 * Expand a URI that may contain glob characters into the matching objects, sorted by URI.
 * A URI without glob characters must name an existing object (else an error says so).
 */
export async function expandGlob(pattern: string): Promise<ObjectInfo[]> {
  const uri = normaliseUri(pattern);
  const storage = storageFor(uri);
  if (!GLOB_CHARS.test(uri)) {
    const info = await storage.stat(uri);
    if (!info) throw new StorageError(uri, 'no such file or object');
    return [info];
  }
  // List from the longest prefix before the first glob segment, then match the remainder.
  const firstGlob = uri.search(GLOB_CHARS);
  const prefix = uri.slice(0, uri.lastIndexOf('/', firstGlob) + 1);
  // Match only the part after the literal prefix, so characters picomatch reads as syntax in a fixed folder name
  // (e.g. `CLEVR-Math(MathV360K)/`) stay literal.
  const match = picomatch(uri.slice(prefix.length), { dot: false });
  const out: ObjectInfo[] = [];
  for await (const o of storage.list(prefix)) if (match(o.uri.slice(prefix.length))) out.push(o);
  out.sort((a, b) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0));
  return out;
}

export async function expandGlobs(patterns: string[]): Promise<ObjectInfo[]> {
  const seen = new Map<string, ObjectInfo>();
  for (const p of patterns) for (const o of await expandGlob(p)) seen.set(o.uri, o);
  return [...seen.values()].sort((a, b) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0));
}
