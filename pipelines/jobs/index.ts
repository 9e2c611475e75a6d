// One entry point for every job of the build graph, used by both executors. A job is idempotent: its outputs are
// written under deterministic keys, then a done marker records them; a job whose marker and outputs check out is
// skipped on rerun (resume), and a job that runs twice can only rewrite the same bytes.
import { storageFor } from '../../core/storage/index.ts';
import { type Manifest, readManifest } from '../../manifests/manifest.ts';
import type { BuildContext, Stage } from '../context.ts';
import { readJson, readJsonIfExists, writeJson } from '../json-io.ts';
import { buildLayout } from '../layout.ts';
import { orderedMap } from '../ordered-map.ts';
import { runFinalize } from './finalize.ts';
import { runIngest } from './ingest.ts';
import { runPlan } from './plan.ts';
import { runRoute } from './route.ts';
import { runSelect } from './select.ts';
import { runShuffle } from './shuffle.ts';
import { runWrite } from './write.ts';

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

async function outputsOf(ctx: BuildContext, stage: Stage, n: number): Promise<string[]> {
  const l = buildLayout(ctx.out);
  switch (stage) {
    case 'plan':
      return [l.plan];
    case 'ingest':
      return [l.part(n), l.partKeys(n), l.partQuarantine(n), l.partSummary(n)];
    case 'select': {
      const plan = await readJson<{ partitions: unknown[] }>(l.plan);
      return [l.select, ...plan.partitions.map((_, i) => l.partSelection(i))];
    }
    case 'shuffle':
      return [l.bucket(n), l.bucketIndex(n)];
    case 'route': {
      const { shards } = await readJson<{ shards: number }>(l.select);
      return Array.from({ length: shards }, (_, s) => l.shardRoute(s));
    }
    case 'write':
      return [l.shard(n), l.done('write-result', n)];
    case 'finalize':
      return [l.manifest, l.quarantine];
  }
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

async function execute(
  ctx: BuildContext,
  stage: Stage,
  n: number,
  signal?: AbortSignal,
): Promise<Record<string, unknown>> {
  switch (stage) {
    case 'plan':
      return runPlan(ctx);
    case 'ingest': {
      const s = await runIngest(ctx, n, signal);
      return { rows: s.rows, in: s.counts.in, component: s.component };
    }
    case 'select': {
      const s = await runSelect(ctx, signal);
      return { shards: s.shards, rows: s.totalEmitted };
    }
    case 'shuffle': {
      const s = await runShuffle(ctx, n, signal);
      return { rows: Object.values(s.shards).reduce((a, r) => a + r[2], 0) };
    }
    case 'route': {
      const r = await runRoute(ctx, signal);
      return { shards: r.shards, entries: r.entries, passes: r.passes };
    }
    case 'write': {
      const s = await runWrite(ctx, n, signal);
      return { rows: s.rows, bytes: s.bytes };
    }
    case 'finalize': {
      const m = await runFinalize(ctx);
      return { rows: m.totals.rows, shards: m.totals.shards };
    }
  }
}

/** Runs one job unless it is already done; returns its (small) result and whether it ran. */
export async function runJobOnce(
  ctx: BuildContext,
  stage: Stage,
  n: number,
  /** Aborted when the executor gives up on the job (time limit, cancel): the job stops between records. */
  signal?: AbortSignal,
): Promise<{ ran: boolean; result: Record<string, unknown> }> {
  const l = buildLayout(ctx.out);
  if (await isJobDone(ctx, stage, n)) {
    const marker = await readJson<DoneMarker>(l.done(stage, n));
    return { ran: false, result: marker.result };
  }
  const startedAt = new Date().toISOString();
  const result = await execute(ctx, stage, n, signal);
  const outputs: DoneMarker['outputs'] = [];
  const stats = orderedMap(await outputsOf(ctx, stage, n), STATS_IN_FLIGHT, async (uri) => {
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
 * The manifest of this build when it is already finished (finalize's marker and outputs check out), so neither
 * executor redoes it, even after its intermediates were removed.
 */
export async function finishedManifest(ctx: BuildContext): Promise<Manifest | undefined> {
  return (await isJobDone(ctx, 'finalize', 0)) ? readManifest(ctx.out) : undefined;
}

/** How many jobs a stage has, once the stages before it are done. */
export async function stageSize(ctx: BuildContext, stage: Stage): Promise<number> {
  const l = buildLayout(ctx.out);
  if (stage === 'plan' || stage === 'select' || stage === 'route' || stage === 'finalize') return 1;
  if (stage === 'write') return (await readJson<{ shards: number }>(l.select)).shards;
  return (await readJson<{ partitions: unknown[] }>(l.plan)).partitions.length;
}
