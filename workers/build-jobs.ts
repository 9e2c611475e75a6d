// What a worker runs for each step: the pipeline's own jobs (pipelines/graph.ts through the job envelope),
// unchanged. An interface so tests can run the BullMQ layer over a small stand-in build.
import type { BuildContext } from '../pipelines/context.ts';
import type { Stage } from '../pipelines/graph.ts';
import type { Count } from '../pipelines/stage.ts';

export interface BuildJobs {
  readContext(out: string): Promise<BuildContext>;
  /** Runs one job idempotently (skips when its done marker and outputs check out). */
  run(
    ctx: BuildContext,
    stage: Stage,
    n: number,
    signal?: AbortSignal,
    /** Told the records a running job has handled so far (ingest), for progress displays. */
    onProgress?: (rows: number) => void,
  ): Promise<{ ran: boolean; result: Record<string, unknown> }>;
  /** A count the graph's fan-outs use (partitions, bands, shards), read from the outputs of the stage that fixes it. */
  count(ctx: BuildContext, c: Count): Promise<number>;
  /**
   * After finalize: drop the intermediates (parts and buckets hold a copy of every image) unless asked to keep them,
   * and the temp files of writes whose worker was killed.
   */
  finished(ctx: BuildContext): Promise<void>;
}

export async function pipelineJobs(): Promise<BuildJobs> {
  const [{ readBuildContext }, { runJobOnce }, { readCount }, { cleanUpAfterFinalize, removeStrayTemps }] =
    await Promise.all([
      import('../pipelines/context.ts'),
      import('../pipelines/job-envelope.ts'),
      import('../pipelines/graph.ts'),
      import('../pipelines/build-envelope.ts'),
    ]);
  return {
    readContext: readBuildContext,
    run: runJobOnce,
    count: readCount,
    async finished(ctx) {
      await cleanUpAfterFinalize(ctx);
      // A worker killed mid-write leaves its temp file (e.g. shards/shard-00002.parquet.tmp-<pid>-<n>); nobody else
      // writes into a finished build, so the finalizing worker sweeps them.
      await removeStrayTemps(ctx.out);
    },
  };
}
