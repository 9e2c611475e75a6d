// `mixforge worker | status | cancel | retry-failed | dashboard`: the fleet commands. Thin: parses flags, calls workers/.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { intFlag } from '../flags.ts';
import { onStopSignals } from '../signals.ts';

async function withQueues<T>(
  redisUrl: string,
  fn: (q: import('../../workers/status.ts').BuildQueues) => Promise<T>,
): Promise<T> {
  const { connectRedis } = await import('../../workers/queues.ts');
  const { BuildQueues } = await import('../../workers/status.ts');
  const redis = connectRedis(redisUrl);
  const queues = new BuildQueues(redis);
  try {
    return await fn(queues);
  } finally {
    await queues.close();
    redis.disconnect();
  }
}

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description(
      'run build jobs from Redis (any build, any machine with the shared storage); stops on SIGTERM/SIGINT',
    )
    .requiredOption('--redis <url>', 'redis://host:port')
    .option('--concurrency <n>', 'jobs in flight per step queue', intFlag('--concurrency', 1), 1)
    .option(
      '--queues <steps>',
      'comma-separated steps to serve: plan,ingest,select,shuffle,route,write,finalize (default all)',
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
      async (flags: {
        redis: string;
        concurrency: number;
        queues?: string;
        lockDuration: number;
        stalledInterval: number;
        maxStalled: number;
        jobTimeout: number;
        name?: string;
      }) => {
        const { STEPS } = await import('../../workers/queues.ts');
        const { DEFAULT_WORKER_SETTINGS, startBuildWorker } = await import('../../workers/worker.ts');
        const steps = flags.queues ? flags.queues.split(',').map((s) => s.trim()) : [...STEPS];
        const unknown = steps.filter((s) => !(STEPS as readonly string[]).includes(s));
        if (unknown.length)
          throw new InvalidArgumentError(
            `--queues: unknown step(s) ${unknown.join(', ')}; expected ${STEPS.join(',')}`,
          );
        const worker = await startBuildWorker({
          ...DEFAULT_WORKER_SETTINGS,
          redis: flags.redis,
          concurrency: flags.concurrency,
          steps: steps as (typeof STEPS)[number][],
          lockDurationMs: flags.lockDuration,
          stalledIntervalMs: flags.stalledInterval,
          maxStalledCount: flags.maxStalled,
          jobTimeoutMs: flags.jobTimeout * 1000,
          name: flags.name ?? DEFAULT_WORKER_SETTINGS.name,
          log: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
        });
        // First signal: finish running jobs, take no new ones. Second: hand running jobs back to the queue now.
        // Third: exit at once (closing talks to Redis and waits for it while it is unreachable); the jobs' locks then
        // expire and other workers take them over.
        await new Promise<void>((resolve, reject) => {
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
      },
    );

  program
    .command('status <buildId>')
    .description('per step: done / active / waiting / failed, with failure reasons')
    .requiredOption('--redis <url>', 'redis://host:port')
    .option('--json', 'print the status as JSON')
    .action(async (buildId: string, flags: { redis: string; json?: boolean }) => {
      const { readBuildStatus, formatBuildStatus } = await import('../../workers/status.ts');
      const status = await withQueues(flags.redis, (q) => readBuildStatus(q, buildId));
      process.stdout.write(flags.json ? `${JSON.stringify(status, null, 2)}\n` : formatBuildStatus(status));
      if (status.state === 'unknown' || status.state === 'failed') process.exitCode = 1;
    });

  program
    .command('cancel <buildId>')
    .description('stop a build: running jobs fail without retry, every job of the build is removed')
    .requiredOption('--redis <url>', 'redis://host:port')
    .option('--wait <s>', 'wait this long for running jobs to stop', intFlag('--wait', 1), 30)
    .action(async (buildId: string, flags: { redis: string; wait: number }) => {
      const { cancelBuild } = await import('../../workers/control.ts');
      const r = await withQueues(flags.redis, (q) => cancelBuild(q, buildId, { waitMs: flags.wait * 1000 }));
      process.stdout.write(`build ${buildId}: cancelled, ${r.removed} jobs removed\n`);
      if (r.stillActive.length) {
        process.stderr.write(
          `still running (they stop at their next cancel check): ${r.stillActive.join(', ')}\n`,
        );
        process.exitCode = 1;
      }
    });

  program
    .command('retry-failed <buildId>')
    .description('re-enqueue the failed jobs of a build (completed work is kept)')
    .requiredOption('--redis <url>', 'redis://host:port')
    .action(async (buildId: string, flags: { redis: string }) => {
      const { retryFailed } = await import('../../workers/control.ts');
      const ids = await withQueues(flags.redis, (q) => retryFailed(q, buildId));
      process.stdout.write(
        ids.length ? `re-enqueued ${ids.length}: ${ids.join(', ')}\n` : `build ${buildId}: no failed jobs\n`,
      );
    });

  program
    .command('dashboard')
    .description('serve bull-board for the build queues')
    .requiredOption('--redis <url>', 'redis://host:port')
    .option('--port <n>', 'HTTP port', intFlag('--port', 1), 3000)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .action(async (flags: { redis: string; port: number; host: string }) => {
      const { startDashboard } = await import('../../workers/dashboard.ts');
      const d = await startDashboard({ redis: flags.redis, port: flags.port, host: flags.host });
      process.stderr.write(`dashboard: ${d.url}\n`);
      await new Promise<void>((resolve) => {
        onStopSignals((_sig, n) => {
          if (n > 1) process.exit(130);
          d.close().then(resolve, resolve);
        });
      });
    });
}
