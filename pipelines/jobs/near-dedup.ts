// near-dedup: resolves near-duplicate samples (spec `near_dedup`) from the candidate pairs every near-dedup-band job
// wrote: each pair is verified on estimated Jaccard and on per-image Hamming distance, and clusters keep their
// earliest-component, smallest-take-key sample. Writes per-part drop lists that select applies.
// Memory: the candidate pairs and the key rows of the samples that have a candidate (read one part at a time).

import { createHash } from 'node:crypto';
import { hamming64, hash64FromHex } from '../../core/lsh.ts';
import { estimatedJaccard } from '../../core/minhash.ts';
import { NearDupClusters } from '../../core/near-dup-clusters.ts';
import type { QuarantineRecord } from '../../core/quarantine.ts';
import { storageFor } from '../../core/storage/index.ts';
import type { NearDupReason, NearDupSummary } from '../../manifests/near-dup-summary.ts';
import type { NearDedupSpec } from '../../manifests/spec-schema.ts';
import { signatureFromBase64 } from '../../transforms/near-dup-fields.ts';
import type { BuildContext } from '../context.ts';
import { type KeyRow, readKeysFile } from '../keys-file.ts';
import { buildLayout } from '../layout.ts';
import { readRecordStream } from '../records-file.ts';
import { defineStage } from '../stage.ts';
import { readJson, writeJson } from '../storage-json.ts';
import { type PartSummary, readPartSummaries } from './ingest.ts';
import { readBandPairs } from './near-dedup-band.ts';
import { type NearDupBands, partOffsets } from './near-dedup-plan.ts';
import type { BuildPlan } from './plan.ts';

/** The rows of one part that near-dedup drops (select leaves them out before exact dedup and take). */
export interface PartNearDups {
  part: number;
  drops: { row: number; reason: NearDupReason }[];
}

const EXAMPLES = 6;
const THUMB_SIDE = 128;

interface Row extends KeyRow {
  ci: number;
  part: number;
  row: number;
}

/** The keep order: earliest component, then take key, then id. */
function better(a: Row, b: Row): boolean {
  if (a.ci !== b.ci) return a.ci < b.ci;
  return a.takeKey < b.takeKey || (a.takeKey === b.takeKey && a.id < b.id);
}

/** Largest per-image distance of two samples, or undefined when their image counts differ. */
function imageDistance(a: string[], b: string[]): number | undefined {
  if (a.length !== b.length) return undefined;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const x = hash64FromHex(a[i]);
    const y = hash64FromHex(b[i]);
    worst = Math.max(worst, hamming64(x.hi, x.lo, y.hi, y.lo));
  }
  return worst;
}

export async function runNearDedup(ctx: BuildContext, signal?: AbortSignal): Promise<NearDupSummary> {
  const layout = buildLayout(ctx.out);
  const parts = await readPartSummaries(ctx);
  const nd = ctx.spec.near_dedup;
  const summary: NearDupSummary = { enabled: nd !== undefined, candidates: 0, components: {}, examples: [] };
  const drops = parts.map((p): PartNearDups => ({ part: p.part, drops: [] }));
  const quarantine: string[] = [];
  if (nd) {
    const result = await findNearDups(ctx, nd, parts, signal);
    summary.candidates = result.candidates;
    for (const c of ctx.spec.components)
      summary.components[c.name] = { 'near-duplicate-image': 0, 'near-duplicate-text': 0 };
    for (const d of result.dropped) {
      drops[d.row.part].drops.push({ row: d.row.row, reason: d.reason });
      const component = ctx.spec.components[d.row.ci].name;
      summary.components[component][d.reason]++;
      const record: QuarantineRecord & { component: string } = {
        origin: d.row.near?.origin ?? '',
        source: d.row.near?.source ?? '',
        stage: 'build',
        reason: d.reason,
        message: `near-duplicate of ${d.kept.id} (${ctx.spec.components[d.kept.ci].name}): image distance ${d.distance}, text Jaccard ≈ ${d.jaccard.toFixed(2)}`,
        id: d.row.id,
        component,
      };
      quarantine.push(`${JSON.stringify(record)}\n`);
    }
    // A few examples for the report, chosen by a keyed hash of the dropped id (stable, spread over components).
    const rank = (d: Dropped) =>
      createHash('sha256').update(`${ctx.spec.seed}\u0000${d.row.id}`).digest('hex');
    const chosen = result.dropped
      .map((d) => ({ d, r: rank(d) }))
      .sort((a, b) => (a.r < b.r ? -1 : a.r > b.r ? 1 : 0))
      .slice(0, EXAMPLES)
      .map((x) => x.d);
    const thumbs = await thumbnails(
      ctx,
      chosen.flatMap((d) => [d.row, d.kept]),
    );
    summary.examples = chosen.map((d) => ({
      reason: d.reason,
      dropped: { id: d.row.id, component: ctx.spec.components[d.row.ci].name, ...thumbs.get(d.row) },
      kept: { id: d.kept.id, component: ctx.spec.components[d.kept.ci].name, ...thumbs.get(d.kept) },
      distance: d.distance,
      jaccard: Number(d.jaccard.toFixed(3)),
    }));
  }
  for (const d of drops) {
    d.drops.sort((a, b) => a.row - b.row);
    await writeJson(layout.nearDupPart(d.part), d);
  }
  await storageFor(ctx.out).writeAtomic(layout.nearDupQuarantine, quarantine.join(''));
  await writeJson(layout.nearDup, summary);
  return summary;
}

/**
 * A small JPEG data: URI of each row's first image, read from the part files now (they are deleted after finalize,
 * so the report could not show a dropped sample's picture later).
 */
async function thumbnails(ctx: BuildContext, rows: Row[]): Promise<Map<Row, { thumbnail: string }>> {
  const { default: sharp } = await import('sharp');
  const out = new Map<Row, { thumbnail: string }>();
  for (const part of [...new Set(rows.map((r) => r.part))].sort((a, b) => a - b)) {
    let i = 0;
    const stream = await storageFor(ctx.out).createReadStream(buildLayout(ctx.out).part(part));
    for await (const rec of readRecordStream(stream)) {
      for (const r of rows)
        if (r.part === part && r.row === i && rec.images.length > 0) {
          const jpeg = await sharp(rec.images[0].bytes)
            .resize(THUMB_SIDE, THUMB_SIDE, { fit: 'inside', withoutEnlargement: true })
            .flatten({ background: '#ffffff' })
            .jpeg({ quality: 70 })
            .toBuffer();
          out.set(r, { thumbnail: `data:image/jpeg;base64,${jpeg.toString('base64')}` });
        }
      i++;
    }
  }
  return out;
}

interface Dropped {
  row: Row;
  kept: Row;
  reason: NearDupReason;
  distance: number;
  jaccard: number;
}

async function findNearDups(
  ctx: BuildContext,
  nd: NearDedupSpec,
  parts: PartSummary[],
  signal?: AbortSignal,
): Promise<{ dropped: Dropped[]; candidates: number }> {
  const layout = buildLayout(ctx.out);
  const componentIndex = new Map(ctx.spec.components.map((c, i) => [c.name, i]));
  const { offsets, total } = partOffsets(parts);
  const readPart = (n: number) => readKeysFile(layout.partKeys(n));
  // Every band job's pairs, once each (a pair found in several bands is one candidate).
  const { bands } = await readJson<NearDupBands>(layout.nearDupBands);
  const pairs = new Set<number>();
  for (let b = 0; b < bands; b++) {
    signal?.throwIfAborted();
    await readBandPairs(layout.nearDupBandPairs(b), (i, j) => pairs.add(i * total + j));
  }

  // Pass 3: the key rows of the samples with a candidate; verify each pair; union the near-duplicates.
  const wanted = new Set<number>();
  for (const p of pairs) {
    wanted.add(Math.floor(p / total));
    wanted.add(p % total);
  }
  const rows = new Map<number, Row>();
  for (const [pi, p] of parts.entries()) {
    if (p.rows === 0) continue;
    const ci = componentIndex.get(p.component) as number;
    const keys = await readPart(p.part);
    for (const [row, k] of keys.entries())
      if (wanted.has(offsets[pi] + row)) rows.set(offsets[pi] + row, { ...k, ci, part: p.part, row });
  }
  const members = [...rows.keys()].sort((a, b) => a - b);
  const slot = new Map(members.map((g, i) => [g, i]));
  const clusters = new NearDupClusters(members.length, (a, b) =>
    better(rows.get(members[a]) as Row, rows.get(members[b]) as Row),
  );
  for (const p of [...pairs].sort((a, b) => a - b)) {
    const a = rows.get(Math.floor(p / total)) as Row;
    const b = rows.get(p % total) as Row;
    const na = a.near as NonNullable<Row['near']>;
    const nb = b.near as NonNullable<Row['near']>;
    const distance = imageDistance(na.images, nb.images);
    if (distance === undefined || distance > nd.images.max_distance) continue;
    if (estimatedJaccard(signatureFromBase64(na.text), signatureFromBase64(nb.text)) < nd.text.threshold)
      continue;
    clusters.union(slot.get(Math.floor(p / total)) as number, slot.get(p % total) as number);
  }
  const dropped: Dropped[] = [];
  for (const [i, g] of members.entries()) {
    const keptSlot = clusters.keptFor(i);
    if (keptSlot === i) continue;
    const row = rows.get(g) as Row;
    const kept = rows.get(members[keptSlot]) as Row;
    // Exact duplicates of the kept sample are exact dedup's to drop (counted as `dedup`).
    if (row.dedupKey === kept.dedupKey) continue;
    const nr = row.near as NonNullable<Row['near']>;
    const nk = kept.near as NonNullable<Row['near']>;
    // An image near-duplicate: the very same text, only the images differ; else the text differs.
    const distance = imageDistance(nr.images, nk.images) ?? -1;
    dropped.push({
      row,
      kept,
      reason: nr.textDigest === nk.textDigest ? 'near-duplicate-image' : 'near-duplicate-text',
      distance,
      jaccard: estimatedJaccard(signatureFromBase64(nr.text), signatureFromBase64(nk.text)),
    });
  }
  return { dropped, candidates: pairs.size };
}

export const nearDedup = defineStage({
  name: 'near-dedup',
  fanOut: 'one',
  // Also holds near-dedup-plan's bands.json and the band jobs' pairs files.
  scratch: ['near-dup'],
  outputs: async (ctx) => {
    const l = buildLayout(ctx.out);
    const plan = await readJson<BuildPlan>(l.plan);
    return [l.nearDup, l.nearDupQuarantine, ...plan.partitions.map((_, i) => l.nearDupPart(i))];
  },
  run: (ctx, _n, signal) => runNearDedup(ctx, signal),
  summary: (s) => ({
    enabled: s.enabled,
    candidates: s.candidates,
    dropped: Object.values(s.components).reduce(
      (a, c) => a + c['near-duplicate-image'] + c['near-duplicate-text'],
      0,
    ),
  }),
});
