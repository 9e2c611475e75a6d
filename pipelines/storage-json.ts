// Small JSON objects on storage (plans, summaries, done markers): canonical bytes so reruns rewrite identical files.

import { canonicalJson } from '../core/canonical-json.ts';
import { storageFor } from '../core/storage/index.ts';

export async function writeJson(uri: string, value: unknown): Promise<void> {
  await storageFor(uri).writeAtomic(uri, `${canonicalJson(value)}\n`);
}

export async function readJson<T>(uri: string): Promise<T> {
  return JSON.parse(Buffer.from(await storageFor(uri).readAll(uri)).toString('utf8')) as T;
}

export async function readJsonIfExists<T>(uri: string): Promise<T | undefined> {
  if (!(await storageFor(uri).stat(uri))) return undefined;
  return readJson<T>(uri);
}
