// What a worker runs for each step: the pipeline's own jobs (pipelines/jobs), unchanged. Loaded lazily so the queue
// plumbing (status, cancel, dashboard) does not pull in sharp and the parquet writer.
import type { BuildContext, Stage } from '../pipelines/context.ts';

export interface BuildJobs {
  readContext(out: string): Promise<BuildContext>;
  /** Runs one job idempotently (skips when its done marker and outputs check out). */
  run(
    ctx: BuildContext,
    stage: Stage,
    n: number,
    signal?: AbortSignal,
  ): Promise<{ ran: boolean; result: Record<string, unknown> }>;
  /** How many jobs a stage has, once the stages before it are done. */
  stageSize(ctx: BuildContext, stage: Stage): Promise<number>;
  /** After finalize: drop the intermediates (parts and buckets hold a copy of every image) unless asked to keep them. */
  finished(ctx: BuildContext): Promise<void>;
  /** Stops the worker-thread pool for image work. */
  shutdown(): Promise<void>;
}

export async function pipelineJobs(): Promise<BuildJobs> {
  const [{ readBuildContext }, jobs, { removeIntermediate }, { shutdownRecordProcessing }] =
    await Promise.all([
      import('../pipelines/context.ts'),
      import('../pipelines/jobs/index.ts'),
      import('../pipelines/executor-inprocess.ts'),
      import('../pipelines/process-adapter.ts'),
    ]);
  return {
    readContext: readBuildContext,
    run: jobs.runJobOnce,
    stageSize: jobs.stageSize,
    async finished(ctx) {
      if (!ctx.options.keepIntermediate) await removeIntermediate(ctx.out);
    },
    shutdown: shutdownRecordProcessing,
  };
}
