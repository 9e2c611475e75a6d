// The default executor: runs the build graph in this process with a concurrency limit (no services needed).
// Image work inside ingest goes to the shared worker-thread pool, so ingest concurrency need not exceed the cores.

import { rm } from 'node:fs/promises';
import { cpus } from 'node:os';
import { isS3Uri, joinUri, storageFor } from '../core/storage/index.ts';
import type { Manifest } from '../manifests/manifest.ts';
import { readManifest } from '../manifests/manifest.ts';
import { type BuildContext, STAGES, type Stage, writeBuildContext } from './context.ts';
import type { BuildEventSink } from './events.ts';
import { finishedManifest, runJobOnce, stageSize } from './jobs/index.ts';
import { shutdownRecordProcessing } from './process-adapter.ts';

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
  const t0 = Date.now();
  const finished = await finishedManifest(ctx);
  if (finished) {
    emit({ type: 'build-done', rows: finished.totals.rows, shards: finished.totals.shards, seconds: 0 });
    return finished;
  }
  await writeBuildContext(ctx);
  try {
    for (const stage of STAGES) await runStage(ctx, stage, concurrency, emit);
  } finally {
    await shutdownRecordProcessing();
  }
  const manifest = await readManifest(ctx.out);
  if (!ctx.options.keepIntermediate) await removeIntermediate(ctx.out);
  emit({
    type: 'build-done',
    rows: manifest.totals.rows,
    shards: manifest.totals.shards,
    seconds: (Date.now() - t0) / 1000,
  });
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

/** Parts and buckets hold a copy of every image; once the manifest is written they are no longer needed. */
export async function removeIntermediate(out: string): Promise<void> {
  const dirs = ['parts', 'buckets', 'routes', 'select', 'quarantine'].map((d) => joinUri(out, '_build', d));
  if (!isS3Uri(out)) {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
    return;
  }
  const s = storageFor(out);
  for (const d of dirs) for await (const o of s.list(`${d}/`)) await s.delete(o.uri);
}
