// What every build does around its jobs, whichever executor runs them: return at once when the build is already
// finished, write the build context, run the graph, then read the manifest, report build-done and clean up.
import { rm } from 'node:fs/promises';
import { isS3Uri, joinUri, storageFor } from '../core/storage/index.ts';
import { type Manifest, readManifest } from '../manifests/manifest.ts';
import { type BuildContext, writeBuildContext } from './context.ts';
import type { BuildEventSink } from './events.ts';
import { SCRATCH_FOLDERS } from './graph.ts';
import { finishedManifest } from './job-envelope.ts';

/**
 * Runs `runGraph` inside the envelope. It resolves `true` once finalize has run, or `false` when the build goes on
 * elsewhere (a detached fleet build): then there is no manifest yet and this returns undefined.
 */
export async function runBuildEnvelope(
  ctx: BuildContext,
  emit: BuildEventSink,
  runGraph: () => Promise<boolean>,
): Promise<Manifest | undefined> {
  const t0 = Date.now();
  const finished = await finishedManifest(ctx);
  if (finished) {
    emit({ type: 'build-done', rows: finished.totals.rows, shards: finished.totals.shards, seconds: 0 });
    return finished;
  }
  await writeBuildContext(ctx);
  if (!(await runGraph())) return undefined;
  const manifest = await readManifest(ctx.out);
  emit({
    type: 'build-done',
    rows: manifest.totals.rows,
    shards: manifest.totals.shards,
    seconds: (Date.now() - t0) / 1000,
  });
  return manifest;
}

/** After finalize: parts and buckets hold a copy of every image, so the stages' scratch folders go (unless kept). */
export async function cleanUpAfterFinalize(ctx: BuildContext): Promise<void> {
  if (ctx.options.keepIntermediate) return;
  const dirs = SCRATCH_FOLDERS.map((d) => joinUri(ctx.out, '_build', d));
  if (!isS3Uri(ctx.out)) {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
    return;
  }
  const s = storageFor(ctx.out);
  for (const d of dirs) for await (const o of s.list(`${d}/`)) await s.delete(o.uri);
}
