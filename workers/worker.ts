// `mixforge worker`: a long-running process that pulls jobs of any build from the step queues and runs them.
// Heartbeats are BullMQ job locks; a dead worker's jobs come back through the stalled-job check of the others.
import { hostname } from 'node:os';
import { type Job, Worker } from 'bullmq';
import { errorMessage } from '../core/errors.ts';
import { type BuildJobs, pipelineJobs } from './build-jobs.ts';
import { BuildFlows } from './flows.ts';
import { HAND_BACK_REASON, makeProcessor } from './processor.ts';
import { queueName, STEPS, type Step } from './queues.ts';
import { DEFAULT_REDIS_TIMEOUT_MS, openRedis, redactRedisUrl } from './redis-client.ts';
import { makeTaskProcessor, type TaskHandlers, taskQueueName } from './tasks.ts';
import { answerWithin } from './within.ts';

export interface WorkerSettings {
  redis: string;
  /** The first connect must succeed within this time; also how long a stopping worker waits for a silent Redis. */
  redisTimeoutMs?: number;
  /** Jobs in flight per step queue. Stages are barriers, so one build keeps at most this many busy. */
  concurrency: number;
  /** Which step queues to serve (default all): e.g. only `ingest` on machines with many cores. */
  steps: readonly Step[];
  /** How long a job's lock lasts without renewal (renewed every half). A worker dead this long loses its jobs. */
  lockDurationMs: number;
  /** How often this worker looks for jobs whose lock expired (stalled) and puts them back. */
  stalledIntervalMs: number;
  /** A job that stalls more often than this fails (a job that crashes its worker every time). */
  maxStalledCount: number;
  jobTimeoutMs: number;
  cancelPollMs: number;
  name: string;
  /** Fault injection for kill tests only (see ProcessorSettings.holdAfterDoneMs). */
  holdAfterDoneMs?: number;
  /** The jobs to run; the pipeline's by default. */
  jobs?: BuildJobs;
  /**
   * Sharded tasks this worker serves besides builds, by kind (one queue each, `mixforge-<kind>`): handlers from a
   * higher layer (the CLI registers `tokens`).
   */
  tasks?: TaskHandlers;
  log: (line: string) => void;
}

export const DEFAULT_WORKER_SETTINGS = {
  concurrency: 1,
  steps: STEPS,
  lockDurationMs: 30_000,
  stalledIntervalMs: 30_000,
  maxStalledCount: 5,
  jobTimeoutMs: 3600_000,
  cancelPollMs: 2000,
  name: `${hostname()}-${process.pid}`,
} as const satisfies Partial<WorkerSettings>;

export interface CloseResult {
  /**
   * False when Redis stopped answering while the worker stopped: it exited without recording the end of its jobs
   * (or handing them back). Their locks expire and other workers take them over; their outputs, if committed, make
   * the rerun a skip.
   */
  clean: boolean;
  /** Jobs that were still running locally when the worker gave up on Redis (their work was abandoned). */
  abandoned: string[];
}

export interface BuildWorker {
  /**
   * Stops taking jobs; waits for running jobs to finish, or with `handBack` returns them to their queues at once.
   * Bounded whatever Redis does: when Redis stops answering for `redisTimeoutMs`, it gives up on Redis (see
   * CloseResult) instead of waiting for it.
   */
  close(opts?: { handBack?: boolean }): Promise<CloseResult>;
}

type JobProcessor = (job: Job, token?: string, signal?: AbortSignal) => Promise<unknown>;

/** Resolves true when Redis answers PING within `ms`, false otherwise (never waits longer). */
async function answers(redis: import('ioredis').Redis, ms: number): Promise<boolean> {
  if (redis.status !== 'ready') return false;
  return answerWithin(
    redis.ping().then((r) => r === 'PONG'),
    ms,
  );
}

export async function startBuildWorker(settings: WorkerSettings): Promise<BuildWorker> {
  const redisTimeoutMs = settings.redisTimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS;
  const redis = await openRedis(settings.redis, { timeoutMs: redisTimeoutMs });
  const jobs = settings.jobs ?? (await pipelineJobs());
  const flows = new BuildFlows(redis);
  let handingBack = false;
  const processor = makeProcessor({
    redis,
    flows,
    jobs,
    jobTimeoutMs: settings.jobTimeoutMs,
    cancelPollMs: settings.cancelPollMs,
    handingBack: () => handingBack,
    handBackTimeoutMs: Math.min(redisTimeoutMs, 5000),
    holdAfterDoneMs: settings.holdAfterDoneMs,
    log: (line) => settings.log(`[${settings.name}] ${line}`),
  });
  // Jobs running in this process, tracked here rather than asked of BullMQ: a stopping worker must know when its
  // own work is over even while Redis does not answer.
  const running = new Map<string, Promise<unknown>>();
  const tracked =
    (process: JobProcessor) =>
    (job: Job, token?: string, signal?: AbortSignal): Promise<unknown> => {
      const p = process(job, token, signal);
      const id = `${job.id}#${token ?? ''}`;
      running.set(id, p);
      const untrack = () => running.delete(id);
      p.then(untrack, untrack);
      return p;
    };
  let lastError = '';
  const serve = (queue: string, process: JobProcessor) => {
    const w = new Worker(queue, tracked(process), {
      connection: redis,
      name: settings.name,
      concurrency: settings.concurrency,
      lockDuration: settings.lockDurationMs,
      stalledInterval: settings.stalledIntervalMs,
      maxStalledCount: settings.maxStalledCount,
    });
    // Connection errors repeat while Redis is away; log each distinct one once.
    w.on('error', (err) => {
      const m = errorMessage(err);
      if (m !== lastError) settings.log(`[${settings.name}] ${queue}: ${m}`);
      lastError = m;
    });
    w.on('stalled', (jobId) =>
      settings.log(`[${settings.name}] ${jobId} stalled (its worker stopped renewing the lock); requeued`),
    );
    return w;
  };
  const taskProcessor = makeTaskProcessor(
    settings.tasks ?? {},
    (line) => settings.log(`[${settings.name}] ${line}`),
    { jobTimeoutMs: settings.jobTimeoutMs },
  );
  const queues: { name: string; process: JobProcessor }[] = [
    ...settings.steps.map((step) => ({ name: queueName(step), process: processor })),
    ...Object.keys(settings.tasks ?? {}).map((kind) => ({
      name: taskQueueName(kind),
      process: taskProcessor,
    })),
  ];
  const workers = queues.map((q) => serve(q.name, q.process));
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  settings.log(
    `[${settings.name}] serving ${queues.map((q) => q.name).join(', ')} (concurrency ${settings.concurrency}, lock ${settings.lockDurationMs} ms)`,
  );

  /**
   * The graceful close, bounded: BullMQ's close records each job's end in Redis and retries while Redis is away, so
   * it is raced with a watchdog that gives up on Redis once it has not answered for `redisTimeoutMs`, or once
   * this process has no job left and the close still waits on Redis that long.
   */
  const closeBounded = async (): Promise<CloseResult> => {
    const graceful = (async () => {
      await Promise.all(workers.map((w) => w.close()));
      await flows.close();
    })();
    let closed = false;
    graceful.then(
      () => {
        closed = true;
      },
      () => {
        closed = true;
      },
    );
    let silentSince: number | undefined;
    let idleSince: number | undefined;
    while (!closed) {
      const now = Date.now();
      idleSince = running.size === 0 ? (idleSince ?? now) : undefined;
      const ok = await answers(redis, Math.min(2000, redisTimeoutMs));
      if (closed) break;
      silentSince = ok ? undefined : (silentSince ?? now);
      const gone = silentSince !== undefined && Date.now() - silentSince >= redisTimeoutMs;
      const stuck = idleSince !== undefined && Date.now() - idleSince >= redisTimeoutMs;
      if (gone || stuck) {
        const abandoned = [...running.keys()].map((k) => k.slice(0, k.indexOf('#')));
        settings.log(
          `[${settings.name}] Redis at ${redactRedisUrl(settings.redis)} does not answer: stopping without it` +
            (abandoned.length
              ? `; ${abandoned.join(', ')} abandoned (their locks expire, then another worker reruns them)`
              : ''),
        );
        for (const w of workers) w.cancelAllJobs('mixforge: worker stopping without Redis');
        for (const w of workers) w.disconnect().catch(() => undefined);
        redis.disconnect();
        return { clean: false, abandoned };
      }
      await Promise.race([graceful.catch(() => undefined), new Promise((r) => setTimeout(r, 250))]);
    }
    await graceful;
    redis.disconnect();
    return { clean: true, abandoned: [] };
  };

  let closing: Promise<CloseResult> | undefined;
  return {
    close(opts = {}) {
      if (opts.handBack) {
        handingBack = true;
        for (const w of workers) w.cancelAllJobs(HAND_BACK_REASON);
      }
      closing ??= closeBounded();
      return closing;
    },
  };
}
