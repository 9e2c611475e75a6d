// What wraps every job of the build graph, for both executors: a job is idempotent: its outputs are written under
// deterministic keys, then a done marker records them; a job whose marker and outputs check out is skipped on rerun.
import { storageFor } from '../core/storage/index.ts';
import { type Manifest, readManifest } from '../manifests/manifest.ts';
import type { BuildContext } from './context.ts';
import { LAST_STAGE, readCount, type Stage, sizeOf, stageDef } from './graph.ts';
import { buildLayout } from './layout.ts';
import { orderedMap } from './ordered-map.ts';
import { readJson, readJsonIfExists, writeJson } from './storage-json.ts';

/** Outputs checked at once: route has one per shard (15000 at the 15M recipe), each a request on S3. */
const STATS_IN_FLIGHT = 16;

export interface DoneMarker {
  /** The build (spec hash + output) that wrote it: a changed spec rebuilds instead of reusing old outputs. */
  buildId: string;
  stage: Stage;
  n: number;
  outputs: { uri: string; size: number }[];
  /** Small job result (counts) for progress displays; never sample data. */
  result: Record<string, unknown>;
  startedAt: string;
  finishedAt: string;
}

/** True when the job's marker exists and every output it recorded is still there with the same size. */
export async function isJobDone(ctx: BuildContext, stage: Stage, n: number): Promise<boolean> {
  const marker = await readJsonIfExists<DoneMarker>(buildLayout(ctx.out).done(stage, n));
  if (!marker || marker.buildId !== ctx.buildId) return false;
  const checks = orderedMap(marker.outputs, STATS_IN_FLIGHT, async (o) => {
    const info = await storageFor(o.uri).stat(o.uri);
    return info !== undefined && info.size === o.size;
  });
  for await (const ok of checks) if (!ok) return false;
  return true;
}

/** Runs one job unless it is already done; returns its (small) result and whether it ran. */
export async function runJobOnce(
  ctx: BuildContext,
  stage: Stage,
  n: number,
  /** Aborted when the executor gives up on the job (time limit, cancel, Ctrl-C): it stops between records. */
  signal?: AbortSignal,
  /** Told the records a running job has handled so far (ingest), for progress displays. */
  onProgress?: (rows: number) => void,
): Promise<{ ran: boolean; result: Record<string, unknown> }> {
  const l = buildLayout(ctx.out);
  if (await isJobDone(ctx, stage, n)) {
    const marker = await readJson<DoneMarker>(l.done(stage, n));
    return { ran: false, result: marker.result };
  }
  // A finished build runs nothing again. On a fleet a job can come back after the build went on without it: a head
  // killed after it added the next level (its work committed, its completion not yet recorded in Redis) is rerun
  // once its lock expires, possibly after finalize published the build and removed the scratch folders its
  // outputs were in. Re-executing it then would read removed inputs and fail a published build, or write into it.
  if (stage !== LAST_STAGE && (await isJobDone(ctx, LAST_STAGE, 0))) {
    const marker = await readJsonIfExists<DoneMarker>(l.done(stage, n));
    return { ran: false, result: marker?.buildId === ctx.buildId ? marker.result : {} };
  }
  const def = stageDef(stage);
  const startedAt = new Date().toISOString();
  const result = def.summary(await def.run(ctx, n, signal, onProgress));
  const outputs: DoneMarker['outputs'] = [];
  const stats = orderedMap(await def.outputs(ctx, n), STATS_IN_FLIGHT, async (uri) => {
    const info = await storageFor(uri).stat(uri);
    if (!info) throw new Error(`${stage} ${n}: expected output ${uri} was not written`);
    return { uri, size: info.size };
  });
  for await (const o of stats) outputs.push(o);
  const marker: DoneMarker = {
    buildId: ctx.buildId,
    stage,
    n,
    outputs,
    result,
    startedAt,
    finishedAt: new Date().toISOString(),
  };
  await writeJson(l.done(stage, n), marker);
  return { ran: true, result };
}

/**
 * The manifest of this build when it is already finished (the last stage's marker and outputs check out), so neither
 * executor redoes it, even after its intermediates were removed.
 */
export async function finishedManifest(ctx: BuildContext): Promise<Manifest | undefined> {
  return (await isJobDone(ctx, LAST_STAGE, 0)) ? readManifest(ctx.out) : undefined;
}

/** How many jobs a stage has, once the stages before it are done. */
export function stageSize(ctx: BuildContext, stage: Stage): Promise<number> {
  return sizeOf(stage, (c) => readCount(ctx, c));
}
