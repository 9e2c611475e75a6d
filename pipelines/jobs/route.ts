// route: once every shuffle is done, turn the P bucket indexes (part → shard ranges) into one route file per shard
// (shard → the parts' byte ranges), so write(shard) reads one small file instead of every part's index: P + S reads
// instead of P × S (22M at the 15M-sample recipe's 1500 parts × 15000 shards).

import type { BuildContext } from '../context.ts';
import { buildLayout } from '../layout.ts';
import { orderedMap } from '../ordered-map.ts';
import { defineStage } from '../stage.ts';
import { readJson, writeJson } from '../storage-json.ts';
import type { BucketIndex } from './shuffle.ts';

/** One shard's rows in one part's bucket file. */
export interface RouteEntry {
  part: number;
  offset: number;
  length: number;
  rows: number;
}

export interface ShardRoute {
  shard: number;
  /** In part order (the write stage sorts rows by key, so the order only fixes the read order). */
  entries: RouteEntry[];
}

/**
 * (part, shard) entries held in memory at once: shards are routed in blocks, each a pass over the indexes, so memory
 * stays bounded at any build size (an entry is a few dozen bytes).
 */
const ENTRY_BUDGET = 2_000_000;

/** Bucket indexes read at once (each up to S entries, so a few MiB in memory at most). */
const INDEXES_IN_FLIGHT = 8;

export async function runRoute(
  ctx: BuildContext,
  signal?: AbortSignal,
  entryBudget = ENTRY_BUDGET,
): Promise<{ shards: number; entries: number; passes: number }> {
  const layout = buildLayout(ctx.out);
  const plan = await readJson<{ partitions: unknown[] }>(layout.plan);
  const { shards, totalEmitted } = await readJson<{ shards: number; totalEmitted: number }>(layout.select);
  const parts = plan.partitions.length;
  // Every row lands in one (part, shard) pair, so there are at most min(rows, P·S) entries.
  const bound = Math.min(totalEmitted, parts * shards);
  const passes = Math.max(1, Math.ceil(bound / entryBudget));
  const perPass = Math.ceil(shards / passes);
  let entries = 0;
  for (let first = 0; first < shards; first += perPass) {
    const last = Math.min(shards, first + perPass);
    const routes: RouteEntry[][] = Array.from({ length: last - first }, () => []);
    // In part order (orderedMap keeps it), a few indexes read at once: S3 latency, not bytes, is the cost.
    const indexes = orderedMap(plan.partitions.keys(), INDEXES_IN_FLIGHT, (n) => {
      signal?.throwIfAborted();
      return readJson<BucketIndex>(layout.bucketIndex(n)).then((index) => ({ n, index }));
    });
    for await (const { n, index } of indexes) {
      for (const [s, [offset, length, rows]] of Object.entries(index.shards)) {
        const shard = Number(s);
        if (shard >= first && shard < last) routes[shard - first].push({ part: n, offset, length, rows });
      }
    }
    for (let s = first; s < last; s++) {
      signal?.throwIfAborted();
      const route: ShardRoute = { shard: s, entries: routes[s - first] };
      entries += route.entries.length;
      await writeJson(layout.shardRoute(s), route);
    }
  }
  return { shards, entries, passes };
}

export const route = defineStage({
  name: 'route',
  fanOut: 'one',
  scratch: ['routes'],
  outputs: async (ctx) => {
    const l = buildLayout(ctx.out);
    const { shards } = await readJson<{ shards: number }>(l.select);
    return Array.from({ length: shards }, (_, s) => l.shardRoute(s));
  },
  run: (ctx, _n, signal) => runRoute(ctx, signal),
  summary: (r) => ({ shards: r.shards, entries: r.entries, passes: r.passes }),
});
