// shuffle(part): route the part's kept rows (× repeat) to shard buckets by key range. Output: one bucket file per
// part with rows grouped by shard, plus an index of byte ranges, so write(shard) does one ranged read per part. Rows
// travel without their image bytes (JSON lines from the part's rows file): write reads the images from the part file.
import { createReadStream } from 'node:fs';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { keyedHash64, keyHex, shardOfKey } from '../../core/keyed-hash.ts';
import { storageFor } from '../../core/storage/index.ts';
import type { BuildContext } from '../context.ts';
import { buildLayout } from '../layout.ts';
import { readRefLines } from '../records-file.ts';
import { defineStage, PROGRESS_EVERY } from '../stage.ts';
import { readJson, writeJson } from '../storage-json.ts';
import type { PartSummary } from './ingest.ts';
import type { PartSelection, Selection } from './select.ts';

export interface BucketIndex {
  part: number;
  /** shard → [byte offset, byte length, rows] in the bucket file; shards without rows are absent. */
  shards: Record<string, [number, number, number]>;
}

/** Bytes of buffered rows across all shards before spilling to local temp files. */
const SPILL_BUDGET = 16 * 1024 * 1024;

export function orderKey(seed: number, id: string): bigint {
  return keyedHash64(seed, 'order', id);
}

export async function runShuffle(
  ctx: BuildContext,
  n: number,
  signal?: AbortSignal,
  onProgress?: (rows: number) => void,
): Promise<BucketIndex> {
  const layout = buildLayout(ctx.out);
  const selection = await readJson<Selection>(layout.select);
  const sel = await readJson<PartSelection>(layout.partSelection(n));
  const summary = await readJson<PartSummary>(layout.partSummary(n));
  const component = ctx.spec.components.find((c) => c.name === summary.component);
  const repeat = component?.repeat ?? 1;
  const mask = Buffer.from(sel.mask, 'base64');

  const spill = await mkdtemp(join(tmpdir(), `mixforge-shuffle-${n}-`));
  try {
    const buffers = new Map<number, Buffer[]>();
    const rows = new Map<number, number>();
    const spilled = new Set<number>();
    let buffered = 0;
    const flush = async () => {
      for (const [s, bufs] of buffers) {
        await appendFile(join(spill, String(s)), Buffer.concat(bufs));
        spilled.add(s);
      }
      buffers.clear();
      buffered = 0;
    };
    if (sel.kept > 0) {
      let i = 0;
      let routed = 0;
      for await (const rec of readRefLines(await storageFor(ctx.out).createReadStream(layout.partRows(n)))) {
        signal?.throwIfAborted();
        if (i > 0 && i % PROGRESS_EVERY === 0) onProgress?.(routed);
        const keep = (mask[i >> 3] >> (i & 7)) & 1;
        i++;
        if (!keep) continue;
        for (let r = 0; r < repeat; r++) {
          const id = repeat > 1 ? `${rec.id}#r${r}` : rec.id;
          const key = orderKey(ctx.spec.seed, id);
          const s = shardOfKey(key, selection.shards);
          const line = Buffer.from(`${JSON.stringify({ ...rec, id, key: keyHex(key) })}\n`);
          const list = buffers.get(s) ?? [];
          list.push(line);
          buffers.set(s, list);
          rows.set(s, (rows.get(s) ?? 0) + 1);
          routed++;
          buffered += line.length;
          if (buffered > SPILL_BUDGET) await flush();
        }
      }
    }
    // Concatenate shard groups in shard order into the bucket file.
    const index: BucketIndex = { part: n, shards: {} };
    const shardIds = [...rows.keys()].sort((a, b) => a - b);
    const out = new PassThrough();
    const written = storageFor(ctx.out).writeAtomic(layout.bucket(n), out);
    let offset = 0;
    for (const s of shardIds) {
      let len = 0;
      if (spilled.has(s)) {
        for await (const chunk of createReadStream(join(spill, String(s)))) {
          len += (chunk as Buffer).length;
          if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
        }
      }
      for (const b of buffers.get(s) ?? []) {
        len += b.length;
        if (!out.write(b)) await new Promise((r) => out.once('drain', r));
      }
      index.shards[String(s)] = [offset, len, rows.get(s) as number];
      offset += len;
    }
    out.end();
    await written;
    await writeJson(layout.bucketIndex(n), index);
    return index;
  } finally {
    await rm(spill, { recursive: true, force: true });
  }
}

export const shuffle = defineStage({
  name: 'shuffle',
  fanOut: 'partitions',
  parent: 'route',
  scratch: ['buckets'],
  outputs: async (ctx, n) => {
    const l = buildLayout(ctx.out);
    return [l.bucket(n), l.bucketIndex(n)];
  },
  run: runShuffle,
  summary: (s) => ({ rows: Object.values(s.shards).reduce((a, r) => a + r[2], 0) }),
});
