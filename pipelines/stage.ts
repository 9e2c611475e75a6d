// What a stage of the build graph is: its place in the graph (parent, fan-out, the count it fixes) and its work
// (outputs, run, summary). Each pipelines/jobs/<stage>.ts exports one; pipelines/graph.ts lists them in build order.
import type { BuildContext } from './context.ts';

/** Records between two progress reports of a running job (ingest, shuffle, write), so progress moves within a job. */
export const PROGRESS_EVERY = 50;

/**
 * Job counts known only as the build runs: plan fixes the partitions, near-dedup-plan the near-duplicate bands
 * (0 without `near_dedup`), select the shards.
 */
export type Count = 'partitions' | 'bands' | 'shards';

export interface StageDef<N extends string = string, R = unknown> {
  name: N;
  /** How many jobs the stage has: one, or one per partition / band / shard. */
  fanOut: 'one' | Count;
  /**
   * The single-job stage that waits for all of this stage's jobs (a BullMQ flow parent: ingest → near-dedup). A stage
   * without a parent heads a level of the graph; its children run first, and it adds the next level on a fleet.
   */
  parent?: string;
  /** The count this stage's outputs fix, and how to read it back from them. */
  reveals?: { count: Count; read(ctx: BuildContext): Promise<number> };
  /** Folders under `_build/` that hold only this stage's intermediates: removed once the manifest is written. */
  scratch?: readonly string[];
  /** Every file job `n` writes; its done marker records their sizes, and a rerun checks them. */
  outputs(ctx: BuildContext, n: number): Promise<string[]>;
  /** Does job `n`. Writes only under deterministic keys, so running twice rewrites the same bytes. */
  run(
    ctx: BuildContext,
    n: number,
    signal?: AbortSignal,
    /** Told the records handled so far by a job that reports them (ingest), for progress displays. */
    onProgress?: (rows: number) => void,
  ): Promise<R>;
  /** The small result kept in the done marker and on Redis (counts for progress, never sample data). */
  summary(result: R): Record<string, unknown>;
}

/** Keeps the literal stage name for the graph's `Stage` type; the result type stays inside the stage. */
export function defineStage<N extends string, R>(def: StageDef<N, R>): StageDef<N> {
  return def;
}
