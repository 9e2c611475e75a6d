// The default executor: runs the build graph in this process with a concurrency limit (no services needed).
// Image work inside ingest goes to the shared worker-thread pool, so ingest concurrency need not exceed the cores.

import { cpus } from 'node:os';
import type { Manifest } from '../manifests/manifest.ts';
import {
  BuildInterruptedError,
  cleanUpAfterFinalize,
  removeStrayTemps,
  runBuildEnvelope,
} from './build-envelope.ts';
import type { BuildContext } from './context.ts';
import type { BuildEventSink } from './events.ts';
import { STAGES, type Stage } from './graph.ts';
import { runJobOnce, stageSize } from './job-envelope.ts';

export interface InProcessOptions {
  concurrency?: number;
  onEvent?: BuildEventSink;
  /** Write into an output folder that holds files the build did not write (they are left alone). */
  force?: boolean;
  /**
   * Aborted on Ctrl-C / SIGTERM: no new job starts, running jobs stop between records and write nothing half, and
   * the build rejects with BuildInterruptedError once they have (a rerun resumes from the finished jobs).
   */
  signal?: AbortSignal;
}

/**
 * Runs `fn` over 0..n-1 with at most `limit` in flight; rejects on the first failure after in-flight work ends.
 * Once `signal` is aborted no new call starts.
 */
export async function forEachLimited(
  n: number,
  limit: number,
  fn: (i: number) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < n && failed === undefined && !signal?.aborted) {
      const i = next++;
      try {
        await fn(i);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, n)) }, worker));
  if (failed !== undefined) throw failed;
}

export async function runBuildInProcess(ctx: BuildContext, opts: InProcessOptions = {}): Promise<Manifest> {
  const concurrency = opts.concurrency ?? Math.max(1, cpus().length);
  const emit: BuildEventSink = opts.onEvent ?? (() => undefined);
  const { signal } = opts;
  const manifest = await runBuildEnvelope(ctx, { emit, force: opts.force }, async () => {
    // This process is the output's only writer: what an earlier killed run was writing can go.
    await removeStrayTemps(ctx.out);
    try {
      for (const stage of STAGES) {
        signal?.throwIfAborted();
        await runStage(ctx, stage, concurrency, emit, signal);
      }
    } catch (err) {
      if (!signal?.aborted) throw err;
      // Every running job has stopped (its atomic writes removed their temp files); sweep anyway, then say so.
      await removeStrayTemps(ctx.out);
      throw new BuildInterruptedError();
    }
    await cleanUpAfterFinalize(ctx);
    return true;
  });
  if (!manifest) throw new Error(`build ${ctx.buildId}: finished without a manifest`);
  return manifest;
}

async function runStage(
  ctx: BuildContext,
  stage: Stage,
  concurrency: number,
  emit: BuildEventSink,
  signal: AbortSignal | undefined,
): Promise<void> {
  const t = Date.now();
  const total = await stageSize(ctx, stage);
  emit({ type: 'stage-start', stage, total });
  let done = 0;
  let rows = 0;
  await forEachLimited(
    total,
    concurrency,
    async (n) => {
      const r = await runJobOnce(ctx, stage, n, signal, (rows) =>
        emit({ type: 'job-progress', stage, n, rows }),
      );
      done++;
      const jobRows = typeof r.result.rows === 'number' ? r.result.rows : 0;
      rows += jobRows;
      emit({ type: 'job-done', stage, n, ran: r.ran, done, total, rows: jobRows });
    },
    signal,
  );
  signal?.throwIfAborted();
  emit({ type: 'stage-done', stage, total, rows, seconds: (Date.now() - t) / 1000 });
}
