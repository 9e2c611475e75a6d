// near-dedup-plan: once every partition is ingested, cuts near-duplicate detection into fleet jobs: one
// near-dedup-band job per MinHash band of the spec (none without `near_dedup`), each over every sample. It heads the
// ingest level, so on a fleet it is the job that adds the band jobs and their resolve job (near-dedup).
import type { BuildContext } from '../context.ts';
import { buildLayout } from '../layout.ts';
import { defineStage } from '../stage.ts';
import { readJson, writeJson } from '../storage-json.ts';
import { type PartSummary, readPartSummaries } from './ingest.ts';

export interface NearDupBands {
  /** near-dedup-band jobs: the spec's `near_dedup.text.bands`, 0 without `near_dedup`. */
  bands: number;
  /** Samples over all parts (the band jobs and near-dedup number them 0..rows-1 in part order). */
  rows: number;
}

/** Each part's first sample number, in part order: the numbering the band jobs' pairs and near-dedup share. */
export function partOffsets(parts: readonly PartSummary[]): { offsets: number[]; total: number } {
  const offsets: number[] = [];
  let total = 0;
  for (const p of parts) {
    offsets.push(total);
    total += p.rows;
  }
  return { offsets, total };
}

export async function runNearDedupPlan(ctx: BuildContext): Promise<NearDupBands> {
  const { total } = partOffsets(await readPartSummaries(ctx));
  const plan: NearDupBands = { bands: ctx.spec.near_dedup?.text.bands ?? 0, rows: total };
  await writeJson(buildLayout(ctx.out).nearDupBands, plan);
  return plan;
}

export const nearDedupPlan = defineStage({
  name: 'near-dedup-plan',
  fanOut: 'one',
  reveals: {
    count: 'bands',
    read: async (ctx) => (await readJson<NearDupBands>(buildLayout(ctx.out).nearDupBands)).bands,
  },
  outputs: async (ctx) => [buildLayout(ctx.out).nearDupBands],
  run: (ctx) => runNearDedupPlan(ctx),
  summary: (r) => ({ bands: r.bands, samples: r.rows }),
});
