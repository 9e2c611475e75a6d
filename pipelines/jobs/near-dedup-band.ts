// near-dedup-band(b): the candidate pairs of MinHash band b: samples whose band-b keys are equal (a large group split
// by first-image LSH keys, bandGroupPairs). Each band is independent work for any worker: it reads the keys files and
// writes its pairs to the build's storage, where near-dedup merges every band's pairs into clusters.
// Memory: the band's keys are spilled to local bucket files and grouped one bucket at a time (as select does); what
// is held at once is one bucket's groups, one part's keys and the band's candidate pairs.
import { createReadStream, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import {
  bandGroupPairs,
  type Hash64,
  hammingLsh,
  hash64FromHex,
  tablesForRecall,
  textBandKey,
} from '../../core/lsh.ts';
import { storageFor } from '../../core/storage/index.ts';
import { signatureFromBase64 } from '../../transforms/near-dup-fields.ts';
import type { BuildContext } from '../context.ts';
import { readKeysFile } from '../keys-file.ts';
import { buildLayout } from '../layout.ts';
import { SpillBuckets } from '../spill-buckets.ts';
import { defineStage } from '../stage.ts';
import { readPartSummaries } from './ingest.ts';
import { partOffsets } from './near-dedup-plan.ts';

/** Band rows per bucket file, about (a bucket is grouped in memory: ~300 B a row with its strings and maps). */
const BUCKET_ROWS = 250_000;
const SPILL_BYTES = 8 * 1024 * 1024;
/** Bits per image-LSH key when a large band group is split by its images. */
const GROUP_LSH_BITS = 16;

/**
 * A band's pairs file: every candidate pair (i < j, sample numbers of near-dedup-plan's numbering) once, sorted by
 * (i, j), as two little-endian uint32 each: the same bytes whoever computes it.
 */
export function encodeBandPairs(pairs: Iterable<[number, number]>): Buffer {
  const sorted = [...pairs].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const buf = Buffer.alloc(sorted.length * 8);
  sorted.forEach(([i, j], k) => {
    buf.writeUInt32LE(i, k * 8);
    buf.writeUInt32LE(j, k * 8 + 4);
  });
  return buf;
}

/** Calls `onPair(i, j)` for each pair of a band's pairs file, in file order. */
export async function readBandPairs(uri: string, onPair: (i: number, j: number) => void): Promise<void> {
  const buf = Buffer.from(await storageFor(uri).readAll(uri));
  if (buf.length % 8 !== 0)
    throw new Error(`${uri}: ${buf.length} bytes is not a whole number of (uint32, uint32) pairs`);
  for (let k = 0; k < buf.length; k += 8) onPair(buf.readUInt32LE(k), buf.readUInt32LE(k + 4));
}

export async function runNearDedupBand(
  ctx: BuildContext,
  band: number,
  signal?: AbortSignal,
): Promise<{ pairs: number }> {
  const nd = ctx.spec.near_dedup;
  if (!nd) throw new Error(`near-dedup-band ${band}: the spec has no near_dedup`);
  const layout = buildLayout(ctx.out);
  const parts = await readPartSummaries(ctx);
  const { offsets, total } = partOffsets(parts);
  if (total >= 2 ** 32) throw new RangeError(`near-dedup: ${total} samples do not fit uint32 sample numbers`);
  const componentIndex = new Map(ctx.spec.components.map((c, i) => [c.name, i]));
  const buckets = Math.max(1, Math.ceil(total / BUCKET_ROWS));
  // i·total + j: one number per pair, so the set dedupes pairs found in several image-LSH tables.
  const pairs = new Set<number>();
  const spill = await SpillBuckets.create(`near-dedup-band-${band}`, buckets, SPILL_BYTES);
  try {
    // Pass 1: this band's key of every sample to the bucket file of that key.
    for (const [pi, p] of parts.entries()) {
      signal?.throwIfAborted();
      if (p.rows === 0) continue;
      const ci = componentIndex.get(p.component) as number;
      const scope = nd.scope === 'within' ? `${ci}/` : '';
      for (const [row, k] of (await readKeysFile(layout.partKeys(p.part))).entries()) {
        if (!k.near) throw new Error(`near-dedup: part ${p.part} row ${row} has no near-duplicate fields`);
        const key = textBandKey(signatureFromBase64(k.near.text), nd.text.bands, band);
        if (key === undefined) continue;
        // The first image's hash rides along: a large group (shared boilerplate text) is split by it.
        const line = `${scope}${key}\t${offsets[pi] + row}\t${k.near.images[0] ?? '-'}\n`;
        // The band's bytes are MinHash minimums, already uniform: their first 4 bytes pick the bucket.
        const hex = key.slice(key.indexOf(':') + 1, key.indexOf(':') + 9);
        await spill.add(Number.parseInt(hex, 16) % buckets, line);
      }
    }
    await spill.flush();
    // Pass 2: per bucket, samples that share the key are candidates (bandGroupPairs bounds large groups).
    const imageLsh = hammingLsh(
      ctx.spec.seed,
      GROUP_LSH_BITS,
      tablesForRecall(nd.images.max_distance, GROUP_LSH_BITS, 0.99),
    );
    for (let b = 0; b < buckets; b++) {
      signal?.throwIfAborted();
      const file = spill.file(b);
      if (!existsSync(file)) continue;
      const groups = new Map<string, { g: number; image?: Hash64 }[]>();
      // Line by line: the bucket's text is never held whole beside its groups.
      for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
        if (!line) continue;
        const [key, g, image] = line.split('\t');
        const member = { g: Number(g), ...(image === '-' ? {} : { image: hash64FromHex(image) }) };
        const members = groups.get(key);
        if (members) members.push(member);
        else groups.set(key, [member]);
      }
      for (const members of groups.values())
        bandGroupPairs(members, imageLsh, (i, j) => pairs.add(i * total + j));
    }
  } finally {
    await spill.dispose();
  }
  const list = [...pairs].map((p): [number, number] => [Math.floor(p / total), p % total]);
  signal?.throwIfAborted();
  await storageFor(ctx.out).writeAtomic(layout.nearDupBandPairs(band), encodeBandPairs(list));
  return { pairs: list.length };
}

export const nearDedupBand = defineStage({
  name: 'near-dedup-band',
  fanOut: 'bands',
  parent: 'near-dedup',
  outputs: async (ctx, n) => [buildLayout(ctx.out).nearDupBandPairs(n)],
  run: (ctx, n, signal) => runNearDedupBand(ctx, n, signal),
  summary: (r) => ({ pairs: r.pairs }),
});
