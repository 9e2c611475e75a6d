// Helpers for the LLaVA json-family reader tests: read every partition of a plan, summarise items, and copy a
// local fixture tree to the S3 test server.
import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import type { QuarantineRecord } from '../../core/quarantine.ts';
import type { RawRecord } from '../../core/schema.ts';
import { expandGlob, storageFor } from '../../core/storage/index.ts';
import type { PlanOptions, SourceReader } from '../../sources/types.ts';

export interface ReadResult {
  records: RawRecord[];
  quarantined: QuarantineRecord[];
  partitions: number;
}

/** Plan `uri` and read all partitions in order. */
export async function readEverything(
  reader: SourceReader,
  uri: string,
  options: PlanOptions = {},
): Promise<ReadResult> {
  const files = await expandGlob(uri);
  const partitions = await reader.plan(files, options);
  const out: ReadResult = { records: [], quarantined: [], partitions: partitions.length };
  for (const p of partitions) {
    // Partitions must survive a JSON round trip (plan.json, job payloads).
    const travelled = JSON.parse(JSON.stringify(p));
    for await (const item of reader.read(travelled)) {
      if (item.kind === 'record') out.records.push(item.record);
      else out.quarantined.push(item.record);
    }
  }
  return out;
}

/** A comparable summary: records by id + origin + source + image sha-free sizes, quarantines by origin + reason. */
export function summary(r: ReadResult): string[] {
  return [
    ...r.records.map(
      (x) => `R ${x.origin} ${x.id} ${x.source} ${x.images.map((i) => i.bytes.byteLength).join(',')}`,
    ),
    ...r.quarantined.map((q) => `Q ${q.origin} ${q.reason}`),
  ];
}

/** Copy every regular file under a local folder to `s3Prefix` (symlinks are not copied). */
export async function uploadTree(localDir: string, s3Prefix: string): Promise<void> {
  for (const o of await expandGlob(`${localDir}/**`)) {
    const key = `${s3Prefix}/${relative(localDir, o.uri)}`;
    await storageFor(key).writeAtomic(key, await readFile(o.uri));
  }
}

/** A JSON array text from pieces that are already JSON text (some deliberately malformed). */
export function jsonArrayText(pieces: string[]): string {
  return `[\n${pieces.map((p) => `  ${p}`).join(',\n')}\n]\n`;
}
