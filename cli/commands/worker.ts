// `mixforge worker | status | cancel | retry-failed | builds | dashboard`: the fleet commands. Thin: parses flags,
// calls workers/. Each finds Redis through --redis or the environment and gives up on it after --redis-timeout.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { intFlag } from '../flags.ts';
import { onStopSignals } from '../signals.ts';

interface RedisFlags {
  redis?: string;
  redisTimeout?: number;
}

const positiveSeconds = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(`${name}: expected a positive number of seconds, got ${v}`);
  return n;
};

/** The Redis options every fleet command takes (`build` has its own --redis, which it never reads from the env). */
export function withRedisOptions(
  cmd: Command,
  urlHelp = 'redis://host:port (default: $MIXFORGE_REDIS, then $REDIS_URL)',
): Command {
  return cmd
    .option('--redis <url>', urlHelp)
    .option(
      '--redis-timeout <s>',
      'give up when Redis does not answer within this many seconds (default 10, or $MIXFORGE_REDIS_TIMEOUT)',
      positiveSeconds('--redis-timeout'),
    );
}

/** The URL and timeout of the fleet's Redis from the flags and the environment. */
async function redisTarget(flags: RedisFlags): Promise<{ url: string; timeoutMs: number }> {
  const { redisUrlFrom, redisTimeoutFrom } = await import('../../workers/redis-client.ts');
  return { url: redisUrlFrom(flags.redis), timeoutMs: redisTimeoutFrom(flags.redisTimeout) };
}

async function withQueues<T>(
  flags: RedisFlags,
  fn: (q: import('../../workers/status.ts').BuildQueues, url: string) => Promise<T>,
): Promise<T> {
  const { openRedis } = await import('../../workers/redis-client.ts');
  const { BuildQueues } = await import('../../workers/status.ts');
  const { url, timeoutMs } = await redisTarget(flags);
  const redis = await openRedis(url, { timeoutMs, oneShot: true });
  const queues = new BuildQueues(redis);
  try {
    return await fn(queues, url);
  } finally {
    await queues.close();
    redis.disconnect();
  }
}

export function registerWorker(program: Command): void {
  withRedisOptions(
    program
      .command('worker')
      .description(
        'run build jobs and `tokens` shard jobs from Redis (any machine with the shared storage); stops on SIGTERM/SIGINT',
      ),
  )
    .option('--concurrency <n>', 'jobs in flight per step queue', intFlag('--concurrency', 1), 1)
    .option(
      '--queues <steps>',
      'comma-separated queues to serve: build steps (plan,ingest,…,finalize) and tasks (tokens); default all',
    )
    .option(
      '--lock-duration <ms>',
      'job lock; a worker silent this long loses its job to another',
      intFlag('--lock-duration', 1),
      30_000,
    )
    .option(
      '--stalled-interval <ms>',
      'how often to look for jobs of dead workers',
      intFlag('--stalled-interval', 1),
      30_000,
    )
    .option(
      '--max-stalled <n>',
      'fail a job that stalled more often than this',
      intFlag('--max-stalled', 1),
      5,
    )
    .option(
      '--job-timeout <s>',
      'fail (and retry) an attempt running longer than this',
      intFlag('--job-timeout', 1),
      3600,
    )
    .option('--name <name>', 'worker name shown in logs and the dashboard')
    .action(
      async (
        flags: RedisFlags & {
          concurrency: number;
          queues?: string;
          lockDuration: number;
          stalledInterval: number;
          maxStalled: number;
          jobTimeout: number;
          name?: string;
        },
      ) => {
        const { STEPS } = await import('../../workers/queues.ts');
        const { DEFAULT_WORKER_SETTINGS, startBuildWorker } = await import('../../workers/worker.ts');
        // Tasks besides builds: `mixforge tokens --redis` (its tokenizer lives in train-bridge, above workers/).
        const { tokenTaskFromPayload } = await import('../../train-bridge/loader/token-counts.ts');
        const tasks = { tokens: tokenTaskFromPayload };
        const known = [...STEPS, ...Object.keys(tasks)];
        const wanted = flags.queues ? flags.queues.split(',').map((s) => s.trim()) : known;
        const unknown = wanted.filter((s) => !known.includes(s));
        if (unknown.length)
          throw new InvalidArgumentError(
            `--queues: unknown queue(s) ${unknown.join(', ')}; expected ${known.join(',')}`,
          );
        const steps = STEPS.filter((s) => wanted.includes(s));
        const { url, timeoutMs } = await redisTarget(flags);
        const worker = await startBuildWorker({
          ...DEFAULT_WORKER_SETTINGS,
          redis: url,
          redisTimeoutMs: timeoutMs,
          // Fault injection for the kill tests (test/workers/kill-points.test.ts); unset in production.
          holdAfterDoneMs: Number(process.env.MIXFORGE_TEST_HOLD_AFTER_DONE_MS ?? 0) || undefined,
          concurrency: flags.concurrency,
          steps,
          lockDurationMs: flags.lockDuration,
          stalledIntervalMs: flags.stalledInterval,
          maxStalledCount: flags.maxStalled,
          jobTimeoutMs: flags.jobTimeout * 1000,
          name: flags.name ?? DEFAULT_WORKER_SETTINGS.name,
          tasks: wanted.includes('tokens') ? tasks : {},
          log: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
        });
        // First signal: finish running jobs, take no new ones. Second: hand running jobs back to the queue now.
        // Third: exit at once; the jobs' locks then expire and other workers take them over. Closing never waits
        // more than --redis-timeout for a Redis that does not answer (workers/worker.ts).
        const result = await new Promise<import('../../workers/worker.ts').CloseResult>((resolve, reject) => {
          onStopSignals((sig, n) => {
            const what = [
              'finishing running jobs (again to hand them back)',
              'handing running jobs back (again to exit now)',
            ];
            process.stderr.write(`${sig}: ${what[n - 1] ?? 'exiting now'}\n`);
            if (n > 2) process.exit(130);
            worker.close({ handBack: n > 1 }).then(resolve, reject);
          });
        });
        // Without Redis, BullMQ's reconnect timers would keep the process alive: exit explicitly.
        if (!result.clean) process.exit(1);
      },
    );

  withRedisOptions(
    program
      .command('status <buildId>')
      .description('per step: done / active / waiting / failed, with failure reasons'),
  )
    .option('--json', 'print the status as JSON')
    .action(async (buildId: string, flags: RedisFlags & { json?: boolean }) => {
      const { readBuildStatus, formatBuildStatus } = await import('../../workers/status.ts');
      const { redactRedisUrl } = await import('../../workers/redis-client.ts');
      const [status, url] = await withQueues(
        flags,
        async (q, u) => [await readBuildStatus(q, buildId), u] as const,
      );
      if (flags.json) process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      else if (status.state === 'unknown')
        process.stderr.write(
          `build ${buildId}: no such build in Redis at ${redactRedisUrl(url)} (\`mixforge builds\` lists the builds it knows)\n`,
        );
      else process.stdout.write(formatBuildStatus(status));
      if (status.state === 'unknown' || status.state === 'failed') process.exitCode = 1;
    });

  withRedisOptions(
    program
      .command('cancel <buildId>')
      .description('stop a build: running jobs fail without retry, every job of the build is removed'),
  )
    .option('--wait <s>', 'wait this long for running jobs to stop', intFlag('--wait', 1), 30)
    .action(async (buildId: string, flags: RedisFlags & { wait: number }) => {
      const { cancelBuild } = await import('../../workers/control.ts');
      const r = await withQueues(flags, (q) => cancelBuild(q, buildId, { waitMs: flags.wait * 1000 }));
      process.stdout.write(`build ${buildId}: cancelled, ${r.removed} jobs removed\n`);
      if (r.stillActive.length) {
        process.stderr.write(
          `still running (they stop at their next cancel check): ${r.stillActive.join(', ')}\n`,
        );
        process.exitCode = 1;
      }
    });

  withRedisOptions(
    program
      .command('retry-failed <buildId>')
      .description('re-enqueue the failed jobs of a build (completed work is kept)'),
  ).action(async (buildId: string, flags: RedisFlags) => {
    const { retryFailed } = await import('../../workers/control.ts');
    const ids = await withQueues(flags, (q) => retryFailed(q, buildId));
    process.stdout.write(
      ids.length ? `re-enqueued ${ids.length}: ${ids.join(', ')}\n` : `build ${buildId}: no failed jobs\n`,
    );
  });

  withRedisOptions(
    program.command('builds').description('list the builds this Redis knows, with their state'),
  )
    .option('--json', 'print the list as JSON')
    .action(async (flags: RedisFlags & { json?: boolean }) => {
      const { listBuilds, formatBuildList } = await import('../../workers/status.ts');
      const builds = await withQueues(flags, (q) => listBuilds(q));
      process.stdout.write(flags.json ? `${JSON.stringify(builds, null, 2)}\n` : formatBuildList(builds));
    });

  withRedisOptions(program.command('dashboard').description('serve bull-board for the build queues'))
    .option('--port <n>', 'HTTP port', intFlag('--port', 1), 3000)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .action(async (flags: RedisFlags & { port: number; host: string }) => {
      const { startDashboard } = await import('../../workers/dashboard.ts');
      const { url, timeoutMs } = await redisTarget(flags);
      const d = await startDashboard({
        redis: url,
        redisTimeoutMs: timeoutMs,
        port: flags.port,
        host: flags.host,
      });
      process.stderr.write(`dashboard: ${d.url}\n`);
      await new Promise<void>((resolve) => {
        onStopSignals((_sig, n) => {
          if (n > 1) process.exit(130);
          d.close().then(resolve, resolve);
        });
      });
    });
}
