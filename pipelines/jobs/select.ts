// select: decide exact-dedup winners (earliest component wins, ties by take key then id) and take-sets (the N
// smallest take keys among a component's winners), then fix the shard count. Writes a keep-mask per part.
// Memory is bounded, not proportional to the mixture: key rows are spilled to local bucket files by content key
// and deduplicated one bucket at a time; take thresholds come from a 16-bit histogram of take keys plus one
// histogram bin of candidates. What stays in memory is a bit per row (losers) and the histograms.
import { readFile } from 'node:fs/promises';
import type { NearDupReason } from '../../manifests/near-dup-summary.ts';
import { takeSize } from '../../manifests/spec-schema.ts';
import type { BuildContext } from '../context.ts';
import { type KeyRow, readKeysFile } from '../keys-file.ts';
import { buildLayout } from '../layout.ts';
import { SpillBuckets } from '../spill-buckets.ts';
import { defineStage } from '../stage.ts';
import { readJson, writeJson } from '../storage-json.ts';
import { type PartSummary, readPartSummaries } from './ingest.ts';
import type { PartNearDups } from './near-dedup.ts';
import type { BuildPlan } from './plan.ts';

export interface PartSelection {
  part: number;
  /** Base64 bitmap over the part's rows (row i kept ⇔ bit i set, LSB first). */
  mask: string;
  kept: number;
  dedup: number;
  notTaken: number;
  /** Rows near-dedup dropped (left out before exact dedup and take). */
  nearDuplicateImage: number;
  nearDuplicateText: number;
}

export interface Selection {
  shards: number;
  totalEmitted: number;
  components: Record<
    string,
    {
      candidates: number;
      kept: number;
      emitted: number;
      dedup: number;
      notTaken: number;
      nearDuplicateImage: number;
      nearDuplicateText: number;
    }
  >;
}

/** Key rows per dedup bucket held in memory at once (~150 B each). */
export const DEFAULT_SELECT_BUCKET_ROWS = 500_000;
/** Spilled bucket lines buffered before appending to their files. */
const SPILL_BYTES = 8 * 1024 * 1024;
const HIST_BINS = 1 << 16;

const readKeys = (ctx: BuildContext, n: number) => readKeysFile(buildLayout(ctx.out).partKeys(n));

/** Total order on (take key, id): the take order and the dedup tie-break. */
function before(a: { takeKey: string; id: string }, b: { takeKey: string; id: string }): boolean {
  return a.takeKey < b.takeKey || (a.takeKey === b.takeKey && a.id < b.id);
}

const histBin = (takeKey: string) => Number.parseInt(takeKey.slice(0, 4), 16);
const isSet = (bits: Uint8Array, i: number) => ((bits[i >> 3] >> (i & 7)) & 1) === 1;
const setBit = (bits: Uint8Array, i: number) => {
  bits[i >> 3] |= 1 << (i & 7);
};

/** What dedup leaves: a loser bit per row of each part, and per component its winners and their take-key histogram. */
interface DedupResult {
  losers: Uint8Array[];
  /** Per part, the rows near-dedup dropped, by reason (they are losers too). */
  nearDups: Map<number, NearDupReason>[];
  components: { winners: number; hist: Uint32Array }[];
}

/** A component's take: k rows, and for a partial take the largest (take key, id) kept. */
interface Take {
  k: number;
  /** Undefined when the take keeps all winners or none. */
  threshold?: KeyRow;
}

export async function runSelect(ctx: BuildContext, signal?: AbortSignal): Promise<Selection> {
  const layout = buildLayout(ctx.out);
  const parts = await readPartSummaries(ctx);
  const dedup = await dedupByContent(ctx, parts, signal);
  const takes = await findTakes(ctx, parts, dedup);
  const selection = await writeKeepMasks(ctx, parts, dedup, takes);
  await writeJson(layout.select, selection);
  return selection;
}

/**
 * Exact dedup: spills every key row to a local bucket file by its content key, then per bucket picks the winner of
 * each content key (earliest component, then take order), marks the losers and histograms the winners' take keys.
 */
async function dedupByContent(
  ctx: BuildContext,
  parts: PartSummary[],
  signal?: AbortSignal,
): Promise<DedupResult> {
  const componentIndex = new Map(ctx.spec.components.map((c, i) => [c.name, i]));
  const totalRows = parts.reduce((a, p) => a + p.rows, 0);
  const bucketRows = ctx.options.selectBucketRows ?? DEFAULT_SELECT_BUCKET_ROWS;
  const buckets = Math.max(1, Math.ceil(totalRows / bucketRows));
  const losers = parts.map((p) => new Uint8Array(Math.ceil(p.rows / 8)));
  const components = ctx.spec.components.map(() => ({ winners: 0, hist: new Uint32Array(HIST_BINS) }));
  // Near-duplicates are out before exact dedup: they neither win nor make another row lose.
  const nearDups = await Promise.all(
    parts.map(async (p) => {
      const d = await readJson<PartNearDups>(buildLayout(ctx.out).nearDupPart(p.part));
      for (const x of d.drops) setBit(losers[p.part], x.row);
      return new Map(d.drops.map((x) => [x.row, x.reason]));
    }),
  );

  const spill = await SpillBuckets.create('select', buckets, SPILL_BYTES);
  try {
    for (const p of parts) {
      signal?.throwIfAborted();
      const ci = componentIndex.get(p.component) as number;
      for (const [row, k] of (await readKeys(ctx, p.part)).entries()) {
        if (nearDups[p.part].has(row)) continue;
        const line = `${k.dedupKey}\t${ci}\t${k.takeKey}\t${p.part}\t${row}\t${k.id}\n`;
        await spill.add(Number.parseInt(k.dedupKey.slice(0, 8), 16) % buckets, line);
      }
    }
    await spill.flush();

    for (let b = 0; b < buckets; b++) {
      signal?.throwIfAborted();
      const text = await readFile(spill.file(b), 'utf8').catch(() => '');
      const winners = new Map<
        string,
        { ci: number; takeKey: string; id: string; part: number; row: number }
      >();
      const rows: { dedupKey: string; part: number; row: number }[] = [];
      for (const line of text.split('\n')) {
        if (!line) continue;
        const [dedupKey, ci, takeKey, part, row, ...rest] = line.split('\t');
        const r = { ci: Number(ci), takeKey, id: rest.join('\t'), part: Number(part), row: Number(row) };
        rows.push({ dedupKey, part: r.part, row: r.row });
        const w = winners.get(dedupKey);
        if (!w || r.ci < w.ci || (r.ci === w.ci && before(r, w))) winners.set(dedupKey, r);
      }
      for (const r of rows) {
        const w = winners.get(r.dedupKey);
        if (w && w.part === r.part && w.row === r.row) continue;
        setBit(losers[r.part], r.row);
      }
      for (const w of winners.values()) {
        components[w.ci].winners++;
        components[w.ci].hist[histBin(w.takeKey)]++;
      }
    }
  } finally {
    await spill.dispose();
  }
  return { losers, nearDups, components };
}

/**
 * Each component's take: its size, and for a partial take the threshold, the k-th smallest winner. The histogram
 * gives the bin holding it; one more pass collects that bin's winners and sorts them.
 */
async function findTakes(ctx: BuildContext, parts: PartSummary[], dedup: DedupResult): Promise<Take[]> {
  const componentIndex = new Map(ctx.spec.components.map((c, i) => [c.name, i]));
  const bins = ctx.spec.components.map((c, ci) => {
    const { winners, hist } = dedup.components[ci];
    const k = takeSize(c.take, winners);
    if (k === winners || k === 0) return { k, bin: -1, rank: 0 };
    let cum = 0;
    let bin = 0;
    while (cum + hist[bin] < k) cum += hist[bin++];
    return { k, bin, rank: k - cum };
  });
  const takes: Take[] = bins.map((b) => ({ k: b.k }));
  if (bins.every((b) => b.bin < 0)) return takes;
  const inBin = ctx.spec.components.map(() => [] as KeyRow[]);
  for (const [pi, p] of parts.entries()) {
    const ci = componentIndex.get(p.component) as number;
    if (bins[ci].bin < 0) continue;
    for (const [row, k] of (await readKeys(ctx, p.part)).entries())
      if (!isSet(dedup.losers[pi], row) && histBin(k.takeKey) === bins[ci].bin) inBin[ci].push(k);
  }
  for (const [ci, b] of bins.entries()) {
    if (b.bin < 0) continue;
    inBin[ci].sort((x, y) => (before(x, y) ? -1 : before(y, x) ? 1 : 0));
    takes[ci].threshold = inBin[ci][b.rank - 1];
    inBin[ci] = [];
  }
  return takes;
}

/** Writes a keep-mask per part and returns the selection: per-component totals and the shard count. */
async function writeKeepMasks(
  ctx: BuildContext,
  parts: PartSummary[],
  dedup: DedupResult,
  takes: Take[],
): Promise<Selection> {
  const layout = buildLayout(ctx.out);
  const componentIndex = new Map(ctx.spec.components.map((c, i) => [c.name, i]));
  const taken = (ci: number, k: KeyRow) => {
    const t = takes[ci];
    if (t.k === 0) return false;
    if (!t.threshold) return true;
    return !before(t.threshold, k);
  };
  const summary: Selection['components'] = {};
  for (const [ci, c] of ctx.spec.components.entries()) {
    const n = dedup.components[ci].winners;
    const repeat = c.repeat ?? 1;
    summary[c.name] = {
      candidates: n,
      kept: takes[ci].k,
      emitted: takes[ci].k * repeat,
      dedup: 0,
      notTaken: n - takes[ci].k,
      nearDuplicateImage: 0,
      nearDuplicateText: 0,
    };
  }
  let totalEmitted = 0;
  let totalBytes = 0;
  for (const [pi, p] of parts.entries()) {
    const ci = componentIndex.get(p.component) as number;
    const repeat = ctx.spec.components[ci].repeat ?? 1;
    const keys = await readKeys(ctx, p.part);
    const mask = Buffer.alloc(Math.ceil(keys.length / 8));
    let kept = 0;
    let dropped = 0;
    let notTaken = 0;
    let nearImage = 0;
    let nearText = 0;
    for (const [row, k] of keys.entries()) {
      const near = dedup.nearDups[pi].get(row);
      if (near === 'near-duplicate-image') nearImage++;
      else if (near === 'near-duplicate-text') nearText++;
      else if (isSet(dedup.losers[pi], row)) dropped++;
      else if (taken(ci, k)) {
        setBit(mask, row);
        kept++;
        totalBytes += k.bytes * repeat;
      } else notTaken++;
    }
    totalEmitted += kept * repeat;
    summary[p.component].dedup += dropped;
    summary[p.component].nearDuplicateImage += nearImage;
    summary[p.component].nearDuplicateText += nearText;
    const sel: PartSelection = {
      part: p.part,
      mask: mask.toString('base64'),
      kept,
      dedup: dropped,
      notTaken,
      nearDuplicateImage: nearImage,
      nearDuplicateText: nearText,
    };
    await writeJson(layout.partSelection(p.part), sel);
  }
  // Enough shards for both limits; key ranges make shard sizes vary around the mean, so max_shard_bytes is a target.
  const maxBytes = ctx.spec.output.max_shard_bytes;
  const shards = Math.max(
    1,
    Math.ceil(totalEmitted / ctx.spec.output.shard_rows),
    maxBytes ? Math.ceil(totalBytes / maxBytes) : 1,
  );
  return { shards, totalEmitted, components: summary };
}

export const select = defineStage({
  name: 'select',
  fanOut: 'one',
  reveals: {
    count: 'shards',
    read: async (ctx) => (await readJson<Selection>(buildLayout(ctx.out).select)).shards,
  },
  scratch: ['select'],
  outputs: async (ctx) => {
    const l = buildLayout(ctx.out);
    const plan = await readJson<BuildPlan>(l.plan);
    return [l.select, ...plan.partitions.map((_, i) => l.partSelection(i))];
  },
  run: (ctx, _n, signal) => runSelect(ctx, signal),
  summary: (s) => ({ shards: s.shards, rows: s.totalEmitted }),
});
