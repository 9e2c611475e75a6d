// `mixforge worker`: a long-running process that pulls jobs of any build from the step queues and runs them.
// Heartbeats are BullMQ job locks; a dead worker's jobs come back through the stalled-job check of the others.
import { hostname } from 'node:os';
import { Worker } from 'bullmq';
import { errorMessage } from '../core/errors.ts';
import { type BuildJobs, pipelineJobs } from './build-jobs.ts';
import { BuildFlows } from './flows.ts';
import { HAND_BACK_REASON, makeProcessor } from './processor.ts';
import { connectRedis, queueName, STEPS, type Step } from './queues.ts';

export interface WorkerSettings {
  redis: string;
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
  /** The jobs to run; the pipeline's by default. */
  jobs?: BuildJobs;
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

export interface BuildWorker {
  /** Stops taking jobs; waits for running jobs to finish, or with `handBack` returns them to their queues at once. */
  close(opts?: { handBack?: boolean }): Promise<void>;
}

export async function startBuildWorker(settings: WorkerSettings): Promise<BuildWorker> {
  const redis = connectRedis(settings.redis);
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
    log: (line) => settings.log(`[${settings.name}] ${line}`),
  });
  let lastError = '';
  const workers = settings.steps.map((step) => {
    const w = new Worker(queueName(step), processor, {
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
      if (m !== lastError) settings.log(`[${settings.name}] ${queueName(step)}: ${m}`);
      lastError = m;
    });
    w.on('stalled', (jobId) =>
      settings.log(`[${settings.name}] ${jobId} stalled (its worker stopped renewing the lock); requeued`),
    );
    return w;
  });
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  settings.log(
    `[${settings.name}] serving ${settings.steps.map(queueName).join(', ')} (concurrency ${settings.concurrency}, lock ${settings.lockDurationMs} ms)`,
  );

  let closing: Promise<void> | undefined;
  return {
    close(opts = {}) {
      if (opts.handBack) {
        handingBack = true;
        for (const w of workers) w.cancelAllJobs(HAND_BACK_REASON);
      }
      closing ??= (async () => {
        await Promise.all(workers.map((w) => w.close()));
        await flows.close();
        await jobs.shutdown();
        redis.disconnect();
      })();
      return closing;
    },
  };
}
