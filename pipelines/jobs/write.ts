// write(shard): merge this shard's bucket ranges (from its route file), read the rows' images from the part files,
// sort rows by key, write the Parquet shard (schema mixforge.sample/v1) and record rows, bytes, hashes (file, row
// groups, footer) and the report's statistics.
import type { Sample, SampleImage } from '../../core/schema.ts';
import { storageFor } from '../../core/storage/index.ts';
import { chunksByteLength } from '../../core/storage/types.ts';
import { shardDigests } from '../../manifests/shard-integrity.ts';
import { addSampleToStats, emptyShardStats, type ShardStats } from '../../manifests/stats.ts';
import type { BuildContext } from '../context.ts';
import { buildLayout } from '../layout.ts';
import { orderedMap } from '../ordered-map.ts';
import { decodeRefLines, type ImageRef } from '../records-file.ts';
import { defineStage, PROGRESS_EVERY } from '../stage.ts';
import { readJson, writeJson } from '../storage-json.ts';
import type { ShardRoute } from './route.ts';

export interface ShardResult {
  shard: number;
  path: string;
  rows: number;
  bytes: number;
  sha256: string;
  /** Per-row-group and footer hashes, so readers can check each ranged read (absent in older write records). */
  rowGroupSha256?: string[];
  footer?: { offset: number; sha256: string };
  stats: ShardStats;
}

/**
 * Bucket ranges read at once. A shard gathers one range from each part that routed rows to it (about a thousand at
 * the 15M recipe): one at a time, S3's per-request latency would dominate. Rows are sorted afterwards, so the order
 * of the reads does not matter.
 */
const READS_IN_FLIGHT = 16;

/**
 * Images of one part this close together are read in one request. On local disk none are (a read per image is one
 * syscall, and reading the gap would copy bytes for nothing); an object store's request costs far more than a MiB.
 */
function readGap(out: string): number {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(out) && !out.startsWith('file://') ? 1024 * 1024 : 0;
}

interface ImageRead {
  part: number;
  start: number;
  end: number;
  images: { ref: ImageRef; into: SampleImage }[];
}

/** The image reads of one shard: its images grouped by part, in file order, neighbours within `gap` merged. */
function planImageReads(
  wanted: { part: number; ref: ImageRef; into: SampleImage }[],
  gap: number,
): ImageRead[] {
  wanted.sort((a, b) => a.part - b.part || a.ref.offset - b.ref.offset);
  const reads: ImageRead[] = [];
  for (const w of wanted) {
    const last = reads.at(-1);
    const end = w.ref.offset + w.ref.length;
    if (last && last.part === w.part && w.ref.offset - last.end <= gap) {
      last.end = Math.max(last.end, end);
      last.images.push(w);
    } else reads.push({ part: w.part, start: w.ref.offset, end, images: [w] });
  }
  return reads;
}

export async function runWrite(
  ctx: BuildContext,
  s: number,
  signal?: AbortSignal,
  onProgress?: (rows: number) => void,
): Promise<ShardResult> {
  const layout = buildLayout(ctx.out);
  const route = await readJson<ShardRoute>(layout.shardRoute(s));
  const rows: (Sample & { component: string; hexKey: string })[] = [];
  const ranges = orderedMap(route.entries, READS_IN_FLIGHT, async (entry) => {
    signal?.throwIfAborted();
    const { part, offset, length } = entry;
    return {
      entry,
      bytes: await storageFor(ctx.out).readRange(layout.bucket(part), offset, offset + length),
    };
  });
  let reported = 0;
  // Each row's images, filled in from the part files once every row is known.
  const wanted: { part: number; ref: ImageRef; into: SampleImage }[] = [];
  for await (const { entry, bytes } of ranges) {
    const { part, offset, length, rows: expected } = entry;
    const before = rows.length;
    if (before - reported >= PROGRESS_EVERY) {
      reported = before;
      onProgress?.(before);
    }
    for (const r of decodeRefLines(bytes)) {
      if (!r.key) throw new Error(`shard ${s}: bucket of part ${part} has a row without key (${r.id})`);
      const images = r.images.map((ref) => {
        const into = { bytes: new Uint8Array(0), width: ref.width, height: ref.height, format: ref.format };
        wanted.push({ part, ref, into });
        return into;
      });
      rows.push({
        id: r.id,
        source: r.source,
        images,
        conversations: r.conversations,
        origin: r.origin,
        key: BigInt(`0x${r.key}`),
        metadata: r.metadata,
        component: r.component,
        hexKey: r.key,
      });
    }
    if (rows.length - before !== expected)
      throw new Error(
        `shard ${s}: bucket of part ${part} holds ${rows.length - before} rows at [${offset}, +${length}), its index says ${expected}`,
      );
  }
  const reads = orderedMap(planImageReads(wanted, readGap(ctx.out)), READS_IN_FLIGHT, async (read) => {
    signal?.throwIfAborted();
    const bytes = await storageFor(ctx.out).readRange(layout.part(read.part), read.start, read.end);
    return { read, bytes };
  });
  for await (const { read, bytes } of reads) {
    if (bytes.byteLength !== read.end - read.start)
      throw new Error(
        `shard ${s}: part ${read.part} holds ${bytes.byteLength} of the ${read.end - read.start} image bytes at [${read.start}, ${read.end})`,
      );
    // Views into the read: the shard holds every image until it is written anyway.
    for (const { ref, into } of read.images)
      into.bytes = bytes.subarray(ref.offset - read.start, ref.offset - read.start + ref.length);
  }
  // Keys are equal-length hex, so string order is numeric order; id breaks the (astronomically rare) tie.
  rows.sort((a, b) =>
    a.hexKey < b.hexKey ? -1 : a.hexKey > b.hexKey ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
  );
  const stats = emptyShardStats();
  for (const r of rows) addSampleToStats(stats, r, r.component);
  // Loaded when the job runs: the graph's list, which `status` and `cancel` read, stays without sharp and zstd.
  const { sampleShardChunks } = await import('../../manifests/shard-format.ts');
  const chunks = await sampleShardChunks(rows, {
    compression: ctx.spec.output.compression,
    mixture: ctx.spec.name,
  });
  // Written and hashed as chunks: the shard is never joined into one buffer (fresh memory the size of the shard).
  await storageFor(ctx.out).writeAtomic(layout.shard(s), chunks);
  const { sha256, rowGroupSha256, footer } = shardDigests(chunks);
  const result: ShardResult = {
    shard: s,
    path: layout.shardName(s),
    rows: rows.length,
    bytes: chunksByteLength(chunks),
    sha256,
    rowGroupSha256,
    footer,
    stats,
  };
  await writeJson(layout.done('write-result', s), result);
  return result;
}

export const write = defineStage({
  name: 'write',
  fanOut: 'shards',
  parent: 'finalize',
  outputs: async (ctx, n) => {
    const l = buildLayout(ctx.out);
    return [l.shard(n), l.done('write-result', n)];
  },
  run: runWrite,
  summary: (s) => ({ rows: s.rows, bytes: s.bytes }),
});
