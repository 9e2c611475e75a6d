// The build graph, written down once: the stages in build order, each defined in its own pipelines/jobs file.
// Both executors, the BullMQ queues, `status` and cleanup read this list; everything else here is derived from it.

import type { BuildContext } from './context.ts';
import { contaminationIndex } from './jobs/contamination-index.ts';
import { finalize } from './jobs/finalize.ts';
import { ingest } from './jobs/ingest.ts';
import { nearDedup } from './jobs/near-dedup.ts';
import { nearDedupBand } from './jobs/near-dedup-band.ts';
import { nearDedupPlan } from './jobs/near-dedup-plan.ts';
import { plan } from './jobs/plan.ts';
import { route } from './jobs/route.ts';
import { select } from './jobs/select.ts';
import { shuffle } from './jobs/shuffle.ts';
import { write } from './jobs/write.ts';
import type { Count, StageDef } from './stage.ts';

export const GRAPH = [
  plan,
  contaminationIndex,
  ingest,
  nearDedupPlan,
  nearDedupBand,
  nearDedup,
  select,
  shuffle,
  route,
  write,
  finalize,
] as const;

export type Stage = (typeof GRAPH)[number]['name'];
type Names<T extends readonly { name: string }[]> = { readonly [K in keyof T]: T[K]['name'] };
/** The stage names in build order, as a tuple type (zod enums and BullMQ queues are made from it). */
export const STAGES = GRAPH.map((s) => s.name) as unknown as Names<typeof GRAPH>;

/** The stage whose done marker means the build is finished (its jobs are the last to run). */
export const LAST_STAGE: Stage = STAGES[STAGES.length - 1];

/** A head stage (one job, no parent) and the stages whose jobs it waits for. */
export interface Level {
  head: Stage;
  children: Stage[];
}

export function stageDef(name: Stage): StageDef<Stage> {
  const def = GRAPH.find((s) => s.name === name);
  if (!def) throw new Error(`no stage ${name} in the build graph`);
  return def;
}

export function isStage(name: string): name is Stage {
  return (STAGES as readonly string[]).includes(name);
}

/**
 * The levels in build order: plan; contamination-index; ingest×P → near-dedup-plan; near-dedup-band×B → near-dedup;
 * select; shuffle×P → route; write×S → finalize.
 */
export const LEVELS: readonly Level[] = GRAPH.filter((s) => s.parent === undefined).map((h) => ({
  head: h.name,
  children: GRAPH.filter((s) => s.parent === h.name).map((s) => s.name),
}));

export function levelOf(stage: Stage): Level {
  const level = LEVELS.find((l) => l.head === stage || l.children.includes(stage));
  if (!level) throw new Error(`stage ${stage} is in no level`);
  return level;
}

/**
 * The head whose job adds this stage's jobs to a fleet: the head of the level before (the level's fan-out is
 * known once it ran). Undefined for the first level, which the submitter adds.
 */
export function addedBy(stage: Stage): Stage | undefined {
  const i = LEVELS.indexOf(levelOf(stage));
  return i > 0 ? LEVELS[i - 1].head : undefined;
}

/** The counts fixed by the heads of the levels before this stage's: once known, the stage's size is known. */
function countsBefore(stage: Stage): Count[] {
  const i = LEVELS.indexOf(levelOf(stage));
  return LEVELS.slice(0, i).flatMap((l) => {
    const r = stageDef(l.head).reveals;
    return r ? [r.count] : [];
  });
}

/** Each stage's job count from the counts known so far (a fleet's build record); undefined while unknown. */
export function stageTotals(counts: Partial<Record<Count, number>>): Map<Stage, number | undefined> {
  return new Map(
    GRAPH.map((s) => {
      if (countsBefore(s.name).some((c) => counts[c] === undefined)) return [s.name, undefined];
      return [s.name, s.fanOut === 'one' ? 1 : counts[s.fanOut]];
    }),
  );
}

/** How many jobs a stage has, once the stages before it are done (`count` reads a count from their outputs). */
export async function sizeOf(stage: Stage, count: (c: Count) => Promise<number>): Promise<number> {
  const fanOut = stageDef(stage).fanOut;
  return fanOut === 'one' ? 1 : count(fanOut);
}

/** Reads a count back from the outputs of the stage that fixes it. */
export function readCount(ctx: BuildContext, c: Count): Promise<number> {
  const by = GRAPH.find((s) => s.reveals?.count === c)?.reveals;
  if (!by) throw new Error(`no stage of the build graph fixes the ${c} count`);
  return by.read(ctx);
}

/** Folders under `_build/` that hold only intermediates, removed once the manifest is written. */
export const SCRATCH_FOLDERS: readonly string[] = GRAPH.flatMap((s) => s.scratch ?? []);

if (stageDef(LAST_STAGE).parent !== undefined || stageDef(LAST_STAGE).fanOut !== 'one')
  throw new Error(`build graph: the last stage, ${LAST_STAGE}, must be a single job without a parent`);
// The graph is checked once at load: a child names a head that comes after it, and fan-outs are fixed in time.
for (const [i, s] of GRAPH.entries()) {
  if (s.parent !== undefined) {
    const p = GRAPH.findIndex((h) => h.name === s.parent);
    if (p <= i || GRAPH[p].parent !== undefined || GRAPH[p].fanOut !== 'one')
      throw new Error(`build graph: ${s.name}'s parent ${s.parent} must be a later single-job stage`);
  }
  if (s.parent === undefined && GRAPH.filter((c) => c.parent === s.name).length > 1)
    throw new Error(`build graph: ${s.name} heads more than one child stage (a flow level has one fan-out)`);
  if (s.fanOut !== 'one' && !countsBefore(s.name).includes(s.fanOut))
    throw new Error(`build graph: ${s.name} fans out by ${s.fanOut}, which no earlier level fixes`);
}
