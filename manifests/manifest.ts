// The built-mixture manifest (`manifest.json`) and `verify`: re-hash every shard, its row groups and footer, re-count
// its rows, and check that the counts add up. No timestamps live in the manifest (they go to `_build/log.jsonl`).
import { createHash } from 'node:crypto';
import { openParquet } from '../core/parquet/read.ts';
import { joinUri, storageFor } from '../core/storage/index.ts';
import { shardRowCount } from './shard-format.ts';
import { rowGroupSpan, type ShardHashes, SpanHasher } from './shard-integrity.ts';
import type { MixtureSpec } from './spec-schema.ts';
import type { ShardStats } from './stats.ts';

export interface ManifestCounts {
  in: number;
  kept: number;
  emitted: number;
  dropped: Record<string, number>;
}

/**
 * One shard. `rowGroupSha256` and `footer` (manifests built since they were added) let a reader check each ranged
 * read; without them a reader checks the whole-file `sha256`.
 */
export interface ManifestShard extends Partial<ShardHashes> {
  path: string;
  rows: number;
  bytes: number;
  sha256: string;
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
  shards: ManifestShard[];
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

/**
 * The whole-file sha256 of a shard and, when the manifest has them, the sha256 of each row group (spans from the
 * file's own footer) and of the footer span: all in one read of the file.
 */
async function hashShard(
  uri: string,
  f: { bytes: number; footer?: { offset: number } },
): Promise<{ sha256: string; rowGroups: string[]; footer?: string }> {
  const spans: { start: number; end: number }[] = [];
  if (f.footer) {
    const metadata = await openParquet(uri, f.bytes).then(
      (h) => h.metadata,
      () => undefined, // unreadable footer: the whole-file and footer hashes report it
    );
    if (metadata) for (let g = 0; g < metadata.row_groups.length; g++) spans.push(rowGroupSpan(metadata, g));
    spans.push({ start: f.footer.offset, end: f.bytes });
  }
  const whole = createHash('sha256');
  const parts = new SpanHasher(spans);
  for await (const chunk of await storageFor(uri).createReadStream(uri)) {
    whole.update(chunk as Buffer);
    parts.update(chunk as Buffer);
  }
  const digests = parts.digests();
  return {
    sha256: whole.digest('hex'),
    rowGroups: digests.slice(0, -1),
    footer: f.footer ? digests.at(-1) : undefined,
  };
}

/** Every mismatch between the manifest and what is on storage; empty when the build verifies. */
export async function verifyBuild(out: string): Promise<string[]> {
  const root = manifestRoot(out);
  const m = await readManifest(out);
  const problems: string[] = [];
  const files: ManifestShard[] = [...m.shards, m.quarantine];
  for (const f of files) {
    const uri = joinUri(root, f.path);
    const info = await storageFor(uri).stat(uri);
    if (!info) {
      problems.push(`${f.path}: missing`);
      continue;
    }
    if (info.size !== f.bytes) problems.push(`${f.path}: ${info.size} bytes, manifest says ${f.bytes}`);
    const hashes = await hashShard(uri, f);
    const sha = hashes.sha256;
    if (sha !== f.sha256) problems.push(`${f.path}: sha256 ${sha}, manifest says ${f.sha256}`);
    if (f.rowGroupSha256 && f.footer) {
      if (hashes.footer !== f.footer.sha256)
        problems.push(`${f.path}: footer sha256 ${hashes.footer}, manifest says ${f.footer.sha256}`);
      if (hashes.rowGroups.length !== f.rowGroupSha256.length)
        problems.push(
          `${f.path}: ${hashes.rowGroups.length} row groups, manifest lists ${f.rowGroupSha256.length}`,
        );
      f.rowGroupSha256.forEach((expected, g) => {
        const actual = hashes.rowGroups[g];
        if (actual !== undefined && actual !== expected)
          problems.push(`${f.path}: row group ${g} sha256 ${actual}, manifest says ${expected}`);
      });
    }
    if (sha === f.sha256) {
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
      a + Object.entries(c.counts.dropped).reduce((s, [k, v]) => s + (hasQuarantineRecord(k) ? v : 0), 0),
    0,
  );
  if (quarantined !== m.quarantine.rows)
    problems.push(`quarantine holds ${m.quarantine.rows} records, counts say ${quarantined}`);
  return problems;
}

/** Drop reasons whose every drop has a record in the quarantine table: quarantines and near-duplicates. */
function hasQuarantineRecord(reason: string): boolean {
  return (
    reason.startsWith('quarantine:') || reason === 'near-duplicate-image' || reason === 'near-duplicate-text'
  );
}
