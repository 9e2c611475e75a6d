// The built-mixture manifest (`manifest.json`) and `verify`: re-hash every shard, re-count its rows, and check
// that the counts add up. No timestamps live in the manifest (they go to `_build/log.jsonl`).
import { createHash } from 'node:crypto';
import { joinUri, storageFor } from '../core/storage/index.ts';
import { shardRowCount } from './shard-format.ts';
import type { MixtureSpec } from './spec-schema.ts';
import type { ShardStats } from './stats.ts';

export interface ManifestCounts {
  in: number;
  kept: number;
  emitted: number;
  dropped: Record<string, number>;
}

export interface Manifest {
  schema: 'mixforge.manifest/v1';
  sampleSchema: 'mixforge.sample/v1';
  name: string;
  seed: number;
  specHash: string;
  spec: MixtureSpec;
  inputs: { uri: string; component: string; size: number; etag?: string; mtimeMs?: number }[];
  components: {
    name: string;
    format: string;
    transform: string | null;
    counts: ManifestCounts;
    /** Only when `take.count` asked for more samples than the component had (after dedup): all were kept. */
    take?: { asked: number; available: number; kept: number };
  }[];
  totals: { rows: number; shards: number; bytes: number; quarantined: number };
  shards: { path: string; rows: number; bytes: number; sha256: string }[];
  quarantine: { path: string; rows: number; bytes: number; sha256: string };
  stats: ShardStats;
}

export function manifestUri(out: string): string {
  return out.endsWith('manifest.json') ? out : joinUri(out, 'manifest.json');
}

/** The folder (or prefix) a manifest lives in. */
export function manifestRoot(manifestOrOut: string): string {
  return manifestOrOut.endsWith('manifest.json')
    ? manifestOrOut.slice(0, -'/manifest.json'.length)
    : manifestOrOut;
}

export async function readManifest(outOrManifest: string): Promise<Manifest> {
  const uri = manifestUri(outOrManifest);
  const bytes = await storageFor(uri).readAll(uri);
  const m = JSON.parse(Buffer.from(bytes).toString('utf8')) as Manifest;
  if (m.schema !== 'mixforge.manifest/v1')
    throw new Error(`${uri}: not a mixforge manifest (schema ${String(m.schema)})`);
  return m;
}

async function sha256Of(uri: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of await storageFor(uri).createReadStream(uri)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Every mismatch between the manifest and what is on storage; empty when the build verifies. */
export async function verifyBuild(out: string): Promise<string[]> {
  const root = manifestRoot(out);
  const m = await readManifest(out);
  const problems: string[] = [];
  const files = [...m.shards, m.quarantine];
  for (const f of files) {
    const uri = joinUri(root, f.path);
    const info = await storageFor(uri).stat(uri);
    if (!info) {
      problems.push(`${f.path}: missing`);
      continue;
    }
    if (info.size !== f.bytes) problems.push(`${f.path}: ${info.size} bytes, manifest says ${f.bytes}`);
    const sha = await sha256Of(uri);
    if (sha !== f.sha256) problems.push(`${f.path}: sha256 ${sha}, manifest says ${f.sha256}`);
    else {
      const rows = await shardRowCount(uri);
      if (rows !== f.rows) problems.push(`${f.path}: ${rows} rows, manifest says ${f.rows}`);
    }
  }
  let emitted = 0;
  for (const c of m.components) {
    const dropped = Object.values(c.counts.dropped).reduce((a, b) => a + b, 0);
    if (c.counts.in !== c.counts.kept + dropped)
      problems.push(`component ${c.name}: in ${c.counts.in} != kept ${c.counts.kept} + dropped ${dropped}`);
    emitted += c.counts.emitted;
  }
  const rows = m.shards.reduce((a, s) => a + s.rows, 0);
  if (rows !== m.totals.rows) problems.push(`shard rows add up to ${rows}, totals.rows is ${m.totals.rows}`);
  if (emitted !== rows) problems.push(`components emitted ${emitted} rows, shards hold ${rows}`);
  const quarantined = m.components.reduce(
    (a, c) =>
      a +
      Object.entries(c.counts.dropped).reduce((s, [k, v]) => s + (k.startsWith('quarantine:') ? v : 0), 0),
    0,
  );
  if (quarantined !== m.quarantine.rows)
    problems.push(`quarantine holds ${m.quarantine.rows} records, counts say ${quarantined}`);
  return problems;
}
