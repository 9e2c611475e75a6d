// What every build does around its jobs, whichever executor runs them: return at once when the build is already
// finished, refuse an output folder holding someone else's files, write the build context, say when it resumes,
// run the graph, then read the manifest, warn about short takes, report build-done and clean up.
import { rm } from 'node:fs/promises';
import { MixforgeError } from '../core/errors.ts';
import { filesUnder, refuseForeignFiles } from '../core/foreign-files.ts';
import { isS3Uri, joinUri, storageFor } from '../core/storage/index.ts';
import { type Manifest, readManifest } from '../manifests/manifest.ts';
import { type BuildContext, writeBuildContext } from './context.ts';
import type { BuildEventSink } from './events.ts';
import { readCount, SCRATCH_FOLDERS, STAGES, sizeOf } from './graph.ts';
import { finishedManifest } from './job-envelope.ts';
import { buildLayout, isBuildFile, TEMP_SUFFIX } from './layout.ts';
import { readJsonIfExists } from './storage-json.ts';

/** A build stopped by Ctrl-C or SIGTERM: every finished job is kept, and the same command resumes it. */
export class BuildInterruptedError extends MixforgeError {
  override name = 'BuildInterruptedError';
  constructor() {
    super('interrupted — rerun the same command to resume');
  }
}

export interface EnvelopeOptions {
  emit: BuildEventSink;
  /** Write into an output folder that holds files the build did not write (they are left alone). */
  force?: boolean;
}

/**
 * Runs `runGraph` inside the envelope. It resolves `true` once the last stage has run, or `false` when the build
 * goes on elsewhere (a detached fleet build): then there is no manifest yet and this returns undefined.
 */
export async function runBuildEnvelope(
  ctx: BuildContext,
  opts: EnvelopeOptions,
  runGraph: () => Promise<boolean>,
): Promise<Manifest | undefined> {
  const { emit } = opts;
  const t0 = Date.now();
  const finished = await finishedManifest(ctx);
  if (finished) {
    warnShortTakes(finished, emit);
    emit({ type: 'build-done', rows: finished.totals.rows, shards: finished.totals.shards, seconds: 0 });
    return finished;
  }
  // Before anything is written: a file the build did not write in its output tree is someone else's.
  await refuseForeignFiles('--out', ctx.out, isBuildFile, opts.force);
  await writeBuildContext(ctx);
  const progress = await jobsDone(ctx);
  if (progress.done > 0) emit({ type: 'resume', ...progress });
  if (!(await runGraph())) return undefined;
  const manifest = await readManifest(ctx.out);
  warnShortTakes(manifest, emit);
  emit({
    type: 'build-done',
    rows: manifest.totals.rows,
    shards: manifest.totals.shards,
    seconds: (Date.now() - t0) / 1000,
  });
  return manifest;
}

/**
 * How many of the build's jobs have a done marker, from one listing of `_build/done/` (a rerun checks each job's
 * outputs when it reaches it). Markers of another build (a changed spec) do not count: the plan's marker says whose
 * they are. Stages whose size is not known yet are left out of the total.
 */
async function jobsDone(ctx: BuildContext): Promise<{ done: number; total: number; totalKnown: boolean }> {
  const l = buildLayout(ctx.out);
  const none = { done: 0, total: 0, totalKnown: false };
  const plan = await readJsonIfExists<{ buildId: string }>(l.done(STAGES[0], 0));
  if (plan?.buildId !== ctx.buildId) return none;
  const markers = new Set<string>();
  for await (const o of storageFor(ctx.out).list(`${joinUri(ctx.out, '_build', 'done')}/`))
    markers.add(o.uri);
  let done = 0;
  let total = 0;
  for (const stage of STAGES) {
    const size = await sizeOf(stage, (c) => readCount(ctx, c)).catch(() => undefined);
    if (size === undefined) return { done, total, totalKnown: false };
    total += size;
    for (let n = 0; n < size; n++) if (markers.has(l.done(stage, n))) done++;
  }
  return { done, total, totalKnown: true };
}

/** A `take.count` larger than what its component had is kept whole; the manifest records it and the build says so. */
function warnShortTakes(manifest: Manifest, emit: BuildEventSink): void {
  for (const c of manifest.components) {
    if (!c.take) continue;
    emit({
      type: 'warning',
      message: `component '${c.name}': take.count asks for ${c.take.asked} samples, it has ${c.take.available}; kept ${c.take.kept}`,
    });
  }
}

/**
 * Removes the temporary files of writes that never finished (a build killed mid-write leaves them) from a local
 * output. Only when nothing else writes there: an in-process build that is the only writer of its output, or a
 * fleet build once finalized (a finished build runs no job again: runJobOnce).
 */
export async function removeStrayTemps(out: string): Promise<void> {
  if (isS3Uri(out)) return;
  for await (const f of filesUnder(out))
    if (TEMP_SUFFIX.test(f.rel) && isBuildFile(f.rel)) await rm(f.uri, { force: true });
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
