// The default executor: runs the build graph in this process with a concurrency limit (no services needed).
// Image work inside ingest goes to the shared worker-thread pool, so ingest concurrency need not exceed the cores.

import { cpus } from 'node:os';
import type { Manifest } from '../manifests/manifest.ts';
import { cleanUpAfterFinalize, runBuildEnvelope } from './build-envelope.ts';
import type { BuildContext } from './context.ts';
import type { BuildEventSink } from './events.ts';
import { STAGES, type Stage } from './graph.ts';
import { runJobOnce, stageSize } from './job-envelope.ts';
import { shutdownRecordProcessing } from './record-processor.ts';

export interface InProcessOptions {
  concurrency?: number;
  onEvent?: BuildEventSink;
}

/** Runs `fn` over 0..n-1 with at most `limit` in flight; rejects on the first failure after in-flight work ends. */
export async function forEachLimited(
  n: number,
  limit: number,
  fn: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < n && failed === undefined) {
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
  const manifest = await runBuildEnvelope(ctx, emit, async () => {
    try {
      for (const stage of STAGES) await runStage(ctx, stage, concurrency, emit);
    } finally {
      await shutdownRecordProcessing();
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
): Promise<void> {
  const t = Date.now();
  const total = await stageSize(ctx, stage);
  emit({ type: 'stage-start', stage, total });
  let done = 0;
  let rows = 0;
  await forEachLimited(total, concurrency, async (n) => {
    const r = await runJobOnce(ctx, stage, n);
    done++;
    const jobRows = typeof r.result.rows === 'number' ? r.result.rows : 0;
    rows += jobRows;
    emit({ type: 'job-done', stage, n, ran: r.ran, done, total, rows: jobRows });
  });
  emit({ type: 'stage-done', stage, total, rows, seconds: (Date.now() - t) / 1000 });
}
