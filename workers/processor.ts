// The BullMQ processor for every step: validates the payload, runs the pipeline job (idempotent), adds the next
// level of the flow, and maps failures to BullMQ's retry semantics (deterministic → UnrecoverableError, else retry).
import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import { DeterministicInputError, errorMessage, SourceFileError, SpecError } from '../core/errors.ts';
import type { BuildContext } from '../pipelines/context.ts';
import { LEVELS, levelOf, type Stage, sizeOf, stageDef } from '../pipelines/graph.ts';
import type { BuildJobs } from './build-jobs.ts';
import type { BuildFlows, BuildRef } from './flows.ts';
import {
  buildRecordKey,
  type JobPayload,
  type JobResult,
  jobPayloadSchema,
  readBuildRecord,
  type Step,
} from './queues.ts';
import { answerWithin } from './within.ts';

export interface ProcessorSettings {
  redis: Redis;
  flows: BuildFlows;
  jobs: BuildJobs;
  /** A job that runs longer than this fails its attempt (and is retried with backoff). */
  jobTimeoutMs: number;
  /** How often a running job checks whether its build was cancelled. */
  cancelPollMs: number;
  /** Set when the worker hands its jobs back: a job it still picks up while closing goes straight back too. */
  handingBack: () => boolean;
  /** How long handing a job back may wait for Redis; past it the job is left to expire (its lock is not renewed). */
  handBackTimeoutMs?: number;
  /**
   * Fault injection for the kill tests: hold a job whose work is committed (and, for a head, whose next level is
   * added) this long before BullMQ records it completed. The window exists anyway, for milliseconds; widened, a kill
   * aimed at the job's `done` log line lands in it every time. 0 (no hold) outside tests.
   */
  holdAfterDoneMs?: number;
  log: (line: string) => void;
}

/** Errors that a retry cannot fix: bad input files, invalid specs. Checked along the `cause` chain. */
export function isDeterministicError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof SourceFileError || e instanceof SpecError || e instanceof DeterministicInputError)
      return true;
  }
  return false;
}

export class JobTimeLimitError extends Error {
  override name = 'JobTimeLimitError';
}

class HandBack extends Error {
  override name = 'HandBack';
}

/** Reason passed to `worker.cancelAllJobs` on a second shutdown signal: running jobs go back to the queue. */
export const HAND_BACK_REASON = 'mixforge: worker shutting down, handing the job back';

/**
 * A handed-back job waits this long before it can be taken again. Moving it straight to `wait` would wake this
 * closing worker's own blocked fetch, which (BullMQ 6.7) then takes the job again despite closing.
 */
const HAND_BACK_DELAY_MS = 1000;

function parsePayload(job: Job): JobPayload {
  const r = jobPayloadSchema.safeParse(job.data);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new UnrecoverableError(
      `job ${job.id} (${job.queueName}): payload field ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`,
    );
  }
  return r.data;
}

const rowsOf = (result: Record<string, unknown>) => (typeof result.rows === 'number' ? result.rows : 0);

/**
 * Checks that a parent really has all its children done before it runs. BullMQ guarantees this for the flow, but
 * a failed parent retried by hand (bull-board's retry button) would otherwise run early and, for route, add
 * write jobs over incomplete buckets.
 */
async function checkChildrenDone(job: Job, head: Stage, child: Stage, expected: number): Promise<void> {
  const c = await job.getDependenciesCount();
  const processed = c.processed ?? 0;
  if (processed === expected && !c.unprocessed && !c.failed && !c.ignored) return;
  throw new UnrecoverableError(
    `${head}: ${processed} of ${expected} ${child} jobs done (${c.unprocessed ?? 0} pending, ${c.failed ?? 0} failed); ` +
      'run `mixforge retry-failed <build id>` instead of retrying this job alone',
  );
}

async function assertNotCancelled(redis: Redis, buildId: string): Promise<void> {
  if ((await redis.hget(buildRecordKey(buildId), 'cancelled')) === '1')
    throw new UnrecoverableError(`build ${buildId} was cancelled`);
}

/** Seconds between two progress writes of one job to Redis (each is a round trip). */
const PROGRESS_WRITE_MS = 1000;

/** Stores a running job's records so far as its BullMQ progress (at most once a second), for `build --redis`. */
function progressReporter(job: Job): (rows: number) => void {
  let last = 0;
  return (rows) => {
    const now = Date.now();
    if (now - last < PROGRESS_WRITE_MS) return;
    last = now;
    // Progress is for display only: a failed write must not fail the job.
    job.updateProgress(rows).catch(() => undefined);
  };
}

async function runStep(
  s: ProcessorSettings,
  job: Job,
  p: JobPayload,
  ctx: BuildContext,
  ref: BuildRef,
  abandon: AbortSignal,
): Promise<JobResult> {
  const step: Step = p.step;
  const level = levelOf(step);
  const size = (stage: Stage) => sizeOf(stage, (c) => s.jobs.count(ctx, c));
  const isHead = level.head === step;
  for (const child of isHead ? level.children : [])
    await checkChildrenDone(job, step, child, await size(child));

  const r = await s.jobs.run(ctx, step, p.n, abandon, progressReporter(job));
  const ran = r.ran;
  const rows = rowsOf(r.result);
  // A head extends the flow: it records the count its outputs fixed, then adds the next level. The job's own
  // outputs are committed first, so a crash here only repeats an idempotent add.
  let fanOut: number | undefined;
  if (isHead) {
    const reveals = stageDef(step).reveals;
    if (reveals) fanOut = await s.jobs.count(ctx, reveals.count);
    const next = LEVELS[LEVELS.indexOf(level) + 1];
    if (next) {
      await assertNotCancelled(s.redis, p.buildId);
      if (reveals) await s.redis.hset(buildRecordKey(p.buildId), reveals.count, fanOut ?? 0);
      const child = next.children[0];
      await s.flows.addLevel(ref, next.head, child ? await size(child) : 0);
    } else {
      await s.jobs.finished(ctx);
    }
  }
  return { step, n: p.n, ran, rows, ...(fanOut === undefined ? {} : { fanOut }) };
}

/** What stops a job's work early: its time limit and, for builds, a cancel polled every `pollMs`. */
export interface JobLimits {
  timeoutMs: number;
  cancel?: { check: () => Promise<void>; pollMs: number };
}

/**
 * Resolves with `work`, or rejects on the time limit (JobTimeLimitError), on a cancel, or on a hand-back signal
 * (`signal`, for builds). The work is told to stop through its `abandon` signal (jobs check it between records); its
 * writes are idempotent anyway, and its error must not surface as an unhandled rejection.
 */
export async function bounded<T>(
  start: (abandon: AbortSignal) => Promise<T>,
  limits: JobLimits,
  what: string,
  signal?: AbortSignal,
): Promise<T> {
  const abandon = new AbortController();
  const work = start(abandon.signal);
  work.catch(() => undefined);
  const timers: NodeJS.Timeout[] = [];
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timers.push(
      setTimeout(
        () =>
          reject(
            new JobTimeLimitError(
              `${what}: time limit of ${(limits.timeoutMs / 1000).toFixed(0)} s exceeded`,
            ),
          ),
        limits.timeoutMs,
      ),
    );
    const cancel = limits.cancel;
    if (cancel)
      timers.push(
        setInterval(() => {
          cancel.check().catch((err: unknown) => {
            if (err instanceof UnrecoverableError) reject(err);
          });
        }, cancel.pollMs),
      );
    onAbort = () => reject(new HandBack(String(signal?.reason ?? 'aborted')));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, stop]);
  } catch (err) {
    abandon.abort(err);
    throw err;
  } finally {
    for (const t of timers) clearTimeout(t);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

/** True when `work` settles within `ms` (its failure counts as settled: false); never waits longer. */
function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  return answerWithin(
    work.then(() => true),
    ms,
  );
}

export function makeProcessor(s: ProcessorSettings) {
  // Three parameters: BullMQ passes the abort signal only to processors that declare it.
  return async (job: Job, token?: string, signal?: AbortSignal): Promise<JobResult> => {
    const p = parsePayload(job);
    const what = `${p.step} ${p.n} of ${p.buildId}`;
    const t0 = Date.now();
    // Job boundaries in the log: operators read them, and the kill tests aim at them (test/workers/kill-points).
    s.log(`${what}: started (start ${job.attemptsStarted})`);
    try {
      const record = await readBuildRecord(s.redis, p.buildId);
      if (!record)
        throw new UnrecoverableError(`${what}: no build record ${buildRecordKey(p.buildId)} in Redis`);
      if (record.cancelled) throw new UnrecoverableError(`build ${p.buildId} was cancelled`);
      const ctx = await s.jobs.readContext(p.out);
      if (ctx.buildId !== p.buildId) {
        throw new UnrecoverableError(`${what}: ${p.out} now holds the context of build ${ctx.buildId}`);
      }
      const ref: BuildRef = { buildId: p.buildId, out: p.out, retry: record.retry };
      if (s.handingBack()) throw new HandBack(HAND_BACK_REASON);
      const result = await bounded(
        (abandon) => runStep(s, job, p, ctx, ref, abandon),
        {
          timeoutMs: s.jobTimeoutMs,
          cancel: { check: () => assertNotCancelled(s.redis, p.buildId), pollMs: s.cancelPollMs },
        },
        what,
        signal,
      );
      s.log(`${what}: ${result.ran ? 'done' : 'already done'} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      if (s.holdAfterDoneMs) await new Promise((r) => setTimeout(r, s.holdAfterDoneMs));
      return result;
    } catch (err) {
      if (err instanceof HandBack) {
        // Graceful shutdown: put the job back in the queue now rather than leave it to the stalled-job check.
        // A manual move to delayed is not a failed attempt.
        // Bounded: with Redis gone the move would wait for it forever, and a stopping worker must not.
        const moved = token
          ? await within(
              job.moveToDelayed(Date.now() + HAND_BACK_DELAY_MS, token),
              s.handBackTimeoutMs ?? 5000,
            )
          : false;
        s.log(
          moved
            ? `${what}: handed back`
            : `${what}: not handed back (Redis does not answer); its lock expires, then another worker reruns it`,
        );
        throw new DelayedError();
      }
      const final = err instanceof UnrecoverableError || isDeterministicError(err);
      s.log(
        `${what}: ${final ? 'failed for good' : `attempt ${job.attemptsMade + 1} failed`}: ${errorMessage(err)}`,
      );
      if (err instanceof UnrecoverableError) throw err;
      if (final)
        throw new UnrecoverableError(`${err instanceof Error ? err.name : 'Error'}: ${errorMessage(err)}`);
      throw err;
    }
  };
}
