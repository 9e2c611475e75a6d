// Submitting, cancelling and retrying builds on Redis. Jobs are found by their deterministic ids; every outcome of a
// job is committed on shared storage under deterministic keys, so removing and re-adding jobs never loses work.
import type { Job } from 'bullmq';
import { MixforgeError } from '../core/errors.ts';
import { LAST_STAGE, LEVELS } from '../pipelines/graph.ts';
import { BuildFlows, type BuildRef } from './flows.ts';
import { buildRecordKey, readBuildRecord } from './queues.ts';
import { type BuildQueues, type JobSnapshot, snapshotAll, stepTotals } from './status.ts';

export class UnknownBuildError extends MixforgeError {
  override name = 'UnknownBuildError';
  constructor(readonly buildId: string) {
    super(`build ${buildId}: no such build in this Redis (mixforge:build:${buildId} is missing)`);
  }
}

/** Removes one job without touching its children (they may be completed work another parent will adopt). */
async function removeJob(job: Job): Promise<boolean> {
  try {
    await job.remove({ removeChildren: false });
    return true;
  } catch {
    // Locked by a worker right now (active): the caller tries again later.
    return false;
  }
}

/**
 * Makes a build's jobs exist in Redis: the record, then the plan job. Called only for a build whose outputs are not
 * finished on storage. A resubmitted build whose earlier run left failed jobs is retried; a cancelled one, or one
 * whose jobs all completed but whose outputs are gone, is cleared and enqueued afresh (completed jobs in Redis would
 * otherwise short-circuit the rerun).
 */
export async function submitBuild(
  queues: BuildQueues,
  ref: BuildRef,
): Promise<{ resubmitted: boolean; retried: string[] }> {
  const key = buildRecordKey(ref.buildId);
  const before = await readBuildRecord(queues.redis, ref.buildId);
  let retried: string[] = [];
  if (before) {
    const snaps = await snapshotAll(queues, ref.buildId, before);
    const finalized = snaps.some((s) => s.step === LAST_STAGE && s.state === 'completed');
    if (before.cancelled || finalized) {
      await clearJobs(queues, ref.buildId, { waitMs: 0 });
      await queues.redis.del(key);
    } else if (snaps.some((s) => s.state === 'failed')) {
      retried = await retryFailed(queues, ref.buildId);
    }
  }
  await queues.redis.hset(
    key,
    'out',
    ref.out,
    'attempts',
    ref.retry.attempts,
    'backoffMs',
    ref.retry.backoffMs,
  );
  const flows = new BuildFlows(queues.redis);
  try {
    await flows.addLevel(ref, LEVELS[0].head, 0);
  } finally {
    await flows.close();
  }
  return { resubmitted: before !== undefined, retried };
}

/**
 * Puts a failed build back to work: in each level with a failed job, removes the failed jobs (a child failed for
 * good, and the parent it failed) and re-adds the level. Completed children count as done for the re-added
 * parent; running ones are adopted by it. Returns the ids of the removed-and-re-added failed jobs.
 */
export async function retryFailed(queues: BuildQueues, buildId: string): Promise<string[]> {
  const record = await readBuildRecord(queues.redis, buildId);
  if (!record) throw new UnknownBuildError(buildId);
  if (record.cancelled)
    throw new MixforgeError(`build ${buildId} was cancelled; submit it again with mixforge build`);
  const ref: BuildRef = { buildId, out: record.out, retry: record.retry };
  const totals = stepTotals(record);
  const snaps = await snapshotAll(queues, buildId, record);
  const retried: string[] = [];
  const flows = new BuildFlows(queues.redis);
  try {
    for (const level of LEVELS) {
      const inLevel = snaps.filter((s) => s.step === level.head || level.children.includes(s.step));
      const failed = inLevel.filter((s) => s.state === 'failed');
      if (failed.length === 0) continue;
      for (const f of failed) {
        const job = await queues.job(buildId, f.step, f.n);
        if (job && (await removeJob(job))) retried.push(f.id);
      }
      const child = level.children[0];
      const fanOut = child === undefined ? 0 : totals.get(child);
      if (fanOut === undefined)
        throw new MixforgeError(`build ${buildId}: ${level.head} failed before its fan-out was recorded`);
      await flows.addLevel(ref, level.head, fanOut);
    }
  } finally {
    await flows.close();
  }
  return retried;
}

/** Removes every job of a build that is not running; repeats until none is left or `waitMs` has passed. */
async function clearJobs(
  queues: BuildQueues,
  buildId: string,
  opts: { waitMs: number },
): Promise<{ removed: number; active: JobSnapshot[] }> {
  const deadline = Date.now() + opts.waitMs;
  let removed = 0;
  for (;;) {
    const record = await readBuildRecord(queues.redis, buildId);
    const present = (await snapshotAll(queues, buildId, record)).filter((s) => s.state !== 'missing');
    const active: JobSnapshot[] = [];
    for (const s of present) {
      const job = s.state === 'active' ? undefined : await queues.job(buildId, s.step, s.n);
      if (job && (await removeJob(job))) removed++;
      else active.push(s);
    }
    if (active.length === 0 || Date.now() >= deadline) return { removed, active };
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Cancels a build: flags it (running jobs notice within the worker's cancel poll and fail without retry; no new
 * level is added), then removes its jobs, waiting up to `waitMs` for running ones to stop.
 */
export async function cancelBuild(
  queues: BuildQueues,
  buildId: string,
  opts: { waitMs: number },
): Promise<{ removed: number; stillActive: string[] }> {
  const record = await readBuildRecord(queues.redis, buildId);
  if (!record) throw new UnknownBuildError(buildId);
  await queues.redis.hset(buildRecordKey(buildId), 'cancelled', '1');
  const r = await clearJobs(queues, buildId, opts);
  return { removed: r.removed, stillActive: r.active.map((s) => s.id) };
}
