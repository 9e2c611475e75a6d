// The BullMQ executor: enqueues a build's job graph on Redis for `mixforge worker` processes anywhere, then follows
// it with the same progress events as the in-process executor (or returns at once with --detach).
import { errorMessage, MixforgeError } from '../core/errors.ts';
import type { Manifest } from '../manifests/manifest.ts';
import { runBuildEnvelope } from '../pipelines/build-envelope.ts';
import type { BuildContext } from '../pipelines/context.ts';
import type { BuildEventSink } from '../pipelines/events.ts';
import { addedBy, levelOf, type Stage } from '../pipelines/graph.ts';
import { submitBuild } from './control.ts';
import { DEFAULT_RETRY, type RetryPolicy, readBuildRecord, STEPS, type Step } from './queues.ts';
import { DEFAULT_REDIS_TIMEOUT_MS, openRedis, redactRedisUrl, reportRedisOutages } from './redis-client.ts';
import { BuildQueues, type JobSnapshot, stepTotals } from './status.ts';

export interface QueueBuildOptions {
  redis: string;
  /** The first connect to Redis must succeed within this time (default 10 s). */
  redisTimeoutMs?: number;
  /** Called once the build is recorded in Redis, before it is followed: the CLI prints the id at once. */
  onSubmitted?: (buildId: string) => void;
  /** Enqueue and return without following. */
  detach?: boolean;
  onEvent?: BuildEventSink;
  retry?: RetryPolicy;
  /** How often the follower reads job states from Redis. */
  pollMs?: number;
  /** Write into an output folder that holds files the build did not write (they are left alone). */
  force?: boolean;
}

export class BuildFailedError extends MixforgeError {
  override name = 'BuildFailedError';
  constructor(
    readonly buildId: string,
    readonly failures: JobSnapshot[],
  ) {
    super(
      `build ${buildId} failed: ${failures.map((f) => `${f.step} ${f.n}: ${f.failedReason ?? 'failed'}`).join('; ')}. ` +
        `\`mixforge status ${buildId}\` shows every job; fix the cause, then \`mixforge retry-failed ${buildId}\``,
    );
  }
}

/** A parent that failed because a child failed repeats the child's failure; report the child's own reason instead. */
const isEchoOfChild = (s: JobSnapshot) => /^child .* failed/.test(s.failedReason ?? '');

/**
 * Follows a submitted build until finalize completes, emitting progress events; throws when a job fails for good
 * or the build is cancelled. Reads only the jobs still pending, so a poll costs O(running stage), not O(build).
 */
export async function followBuild(
  queues: BuildQueues,
  buildId: string,
  opts: { onEvent?: BuildEventSink; pollMs?: number } = {},
): Promise<void> {
  const emit: BuildEventSink = opts.onEvent ?? (() => undefined);
  const pollMs = opts.pollMs ?? 500;
  const completed = new Map<Stage, Set<number>>(STEPS.map((s) => [s, new Set<number>()]));
  const reportedAttempts = new Map<string, number>();
  const reportedProgress = new Map<string, number>();
  let current = 0;
  let stageStarted = false;
  let stageRows = 0;
  // Stage timing from the jobs' own timestamps: the follower may see a whole stage complete within one poll.
  let stageFirstStart = Number.POSITIVE_INFINITY;
  let stageLastEnd = 0;
  for (;;) {
    const record = await readBuildRecord(queues.redis, buildId);
    if (!record) throw new MixforgeError(`build ${buildId}: its record disappeared from Redis (cancelled?)`);
    if (record.cancelled) throw new MixforgeError(`build ${buildId} was cancelled`);
    const totals = stepTotals(record);
    while (current < STEPS.length) {
      const stage: Stage = STEPS[current];
      const total = totals.get(stage);
      const adder = addedBy(stage);
      if (total === undefined) {
        if (adder) await failIfFailed(queues, buildId, [await queues.snapshot(buildId, adder, 0)], emit);
        break;
      }
      if (!stageStarted) {
        emit({ type: 'stage-start', stage, total });
        stageStarted = true;
        stageRows = 0;
        stageFirstStart = Number.POSITIVE_INFINITY;
        stageLastEnd = 0;
      }
      const pending: Promise<JobSnapshot>[] = [];
      const done = completed.get(stage) ?? new Set<number>();
      for (let n = 0; n < total; n++) if (!done.has(n)) pending.push(queues.snapshot(buildId, stage, n));
      const snaps = await Promise.all(pending);
      for (const s of snaps) {
        const seen = reportedAttempts.get(s.id) ?? 0;
        if (s.attemptsMade > seen && s.failedReason && s.state !== 'failed' && s.state !== 'completed') {
          reportedAttempts.set(s.id, s.attemptsMade);
          emit({ type: 'job-failed', stage, n: s.n, error: s.failedReason, attempt: s.attemptsMade });
        }
        if (s.state === 'active' && s.progress !== undefined && s.progress !== reportedProgress.get(s.id)) {
          reportedProgress.set(s.id, s.progress);
          emit({ type: 'job-progress', stage, n: s.n, rows: s.progress });
        }
        if (s.state !== 'completed') continue;
        done.add(s.n);
        stageFirstStart = Math.min(stageFirstStart, s.processedOn ?? Date.now());
        stageLastEnd = Math.max(stageLastEnd, s.finishedOn ?? Date.now());
        const rows = s.result?.rows ?? 0;
        stageRows += rows;
        emit({ type: 'job-done', stage, n: s.n, ran: s.result?.ran ?? true, done: done.size, total, rows });
      }
      await failIfFailed(queues, buildId, snaps, emit);
      if (adder && snaps.some((s) => s.state === 'missing')) {
        await failIfFailed(queues, buildId, [await queues.snapshot(buildId, adder, 0)], emit);
      }
      if (done.size < total) break;
      const seconds = Math.max(0, stageLastEnd - Math.min(stageFirstStart, stageLastEnd)) / 1000;
      emit({ type: 'stage-done', stage, total, rows: stageRows, seconds });
      current++;
      stageStarted = false;
    }
    if (current >= STEPS.length) return;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

async function failIfFailed(
  queues: BuildQueues,
  buildId: string,
  snaps: JobSnapshot[],
  emit: BuildEventSink,
): Promise<void> {
  const failed = snaps.filter((s) => s.state === 'failed');
  if (failed.length === 0) return;
  // Name the root causes: a parent failed by its child only echoes it, so look for the failed children too.
  const record = await readBuildRecord(queues.redis, buildId);
  const all = failed.some(isEchoOfChild)
    ? [...failed, ...(await Promise.all(childSnapshots(queues, buildId, failed, stepTotals(record))))]
    : failed;
  const roots = all.filter((s) => s.state === 'failed' && !isEchoOfChild(s));
  const reported = roots.length > 0 ? roots : failed;
  for (const f of reported) {
    emit({
      type: 'job-failed',
      stage: f.step,
      n: f.n,
      error: f.failedReason ?? 'failed',
      attempt: f.attemptsMade,
    });
  }
  throw new BuildFailedError(buildId, reported);
}

function childSnapshots(
  queues: BuildQueues,
  buildId: string,
  parents: JobSnapshot[],
  totals: Map<Step, number | undefined>,
) {
  const out: Promise<JobSnapshot>[] = [];
  for (const p of parents) {
    if (!isEchoOfChild(p)) continue;
    const level = levelOf(p.step);
    if (level.head !== p.step) continue;
    for (const c of level.children)
      for (let n = 0; n < (totals.get(c) ?? 0); n++) out.push(queues.snapshot(buildId, c, n));
  }
  return out;
}

/**
 * `mixforge build --redis`: writes the build context next to the outputs (workers read it from there), records the
 * build in Redis and enqueues its plan job; the rest of the graph is added by the jobs as fan-outs become known.
 */
export async function runBuildOnQueue(
  ctx: BuildContext,
  opts: QueueBuildOptions,
): Promise<Manifest | undefined> {
  const emit: BuildEventSink = opts.onEvent ?? (() => undefined);
  return runBuildEnvelope(ctx, { emit, force: opts.force }, async () => {
    const redis = await openRedis(opts.redis, { timeoutMs: opts.redisTimeoutMs });
    const queues = new BuildQueues(redis);
    try {
      await submitBuild(queues, { buildId: ctx.buildId, out: ctx.out, retry: opts.retry ?? DEFAULT_RETRY });
      opts.onSubmitted?.(ctx.buildId);
      if (opts.detach) return false;
      const stopReporting = reportRedisOutages(
        redis,
        opts.redis,
        opts.redisTimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS,
        (message) => emit({ type: 'warning', message: `${message}; Ctrl-C stops following, not the build` }),
      );
      try {
        await followBuild(queues, ctx.buildId, { onEvent: emit, pollMs: opts.pollMs });
      } finally {
        stopReporting();
      }
      return true;
    } catch (err) {
      if (err instanceof MixforgeError) throw err;
      throw new MixforgeError(`build ${ctx.buildId} on ${redactRedisUrl(opts.redis)}: ${errorMessage(err)}`, {
        cause: err,
      });
    } finally {
      await queues.close();
      redis.disconnect();
    }
  });
}
