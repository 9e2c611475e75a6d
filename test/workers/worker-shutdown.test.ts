// `mixforge worker` stops on SIGTERM/SIGINT within a bounded time even when its Redis has gone away: it cannot
// record or hand back anything then, so it says so and exits instead of waiting for Redis forever.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startRedis } from '../../dev/redis-server.ts';
import { spawnWorker } from '../../dev/worker-process.ts';
import { submitBuild } from '../../workers/control.ts';
import { BuildQueues } from '../../workers/status.ts';
import { countingContext, writeCountingContext } from './counting-build.ts';

const LAUNCHER = join(import.meta.dirname, '..', '..', 'bin', 'mixforge.js');

/** The real launcher (it re-runs itself with its tuned environment, so the worker is its child). */
async function startWorker(url: string): Promise<{ proc: ChildProcess; log: () => string }> {
  const env = { ...process.env };
  delete env.GLIBC_TUNABLES;
  const proc = spawn(
    process.execPath,
    [LAUNCHER, 'worker', '--redis', url, '--redis-timeout', '2', '--name', 'w'],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      output += d.toString('utf8');
      if (/serving mixforge-/.test(output)) resolve();
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`worker exited with ${code} before serving:\n${output}`)));
  });
  return { proc, log: () => output };
}

describe('mixforge worker with its Redis gone', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`stops on ${signal} within the bound, saying it stops without Redis`, async () => {
      const redis = await startRedis();
      const { proc, log } = await startWorker(redis.url);
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
        proc.once('exit', (code, sig) => r({ code, signal: sig })),
      );
      // Guard: a worker that hangs is killed, and the test fails on the time it took.
      const guard = setTimeout(() => proc.kill('SIGKILL'), 60_000);
      try {
        await redis.stop();
        // Let the worker notice (its blocking fetch errors, ioredis starts reconnecting).
        await new Promise((r) => setTimeout(r, 500));
        const t0 = Date.now();
        proc.kill(signal);
        const end = await exited;
        const ms = Date.now() - t0;
        // --redis-timeout 2: about 2 s of silence, plus the probes and the process exit.
        assert.ok(ms < 15_000, `took ${ms} ms to stop:\n${log()}`);
        assert.equal(end.signal, null, log());
        assert.equal(end.code, 1, 'non-zero: it could not record the end of its work in Redis');
        assert.match(log(), /Redis at redis:\/\/127\.0\.0\.1:\d+ does not answer: stopping without it/);
      } finally {
        clearTimeout(guard);
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      }
    });
  }
});

describe('a worker running a job when its Redis goes away', () => {
  it('stops on SIGTERM within the bound, abandoning the job it cannot record (its lock expires instead)', async () => {
    const redis = await startRedis();
    const root = await mkdtemp(join(tmpdir(), 'mixforge-shutdown-'));
    const ctx = countingContext('shutdown-0', join(root, 'out'));
    await writeCountingContext(ctx);
    // plan takes a minute: it is running when Redis goes away, and SIGTERM asks the worker to finish it first.
    const params = {
      partitions: 1,
      recordsPerPartition: 1,
      shardRows: 1,
      delayMs: 0,
      slow: { 'plan.0': 60_000 },
    };
    const settings = {
      redis: redis.url,
      name: 'w',
      params,
      lockDurationMs: 30_000,
      stalledIntervalMs: 30_000,
    };
    const worker = await spawnWorker(
      'w',
      join(import.meta.dirname, 'counting-worker.ts'),
      [JSON.stringify(settings)],
      {
        readyText: /^ready$/m,
      },
    );
    const client = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queues = new BuildQueues(client);
    try {
      await submitBuild(queues, {
        buildId: ctx.buildId,
        out: ctx.out,
        retry: { attempts: 1, backoffMs: 100 },
      });
      for (let i = 0; i < 600 && !/plan 0 of shutdown-0: started/.test(worker.log()); i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.match(worker.log(), /plan 0 of shutdown-0: started/);
      await queues.close();
      client.disconnect();
      await redis.stop();
      const exited = new Promise<number | null>((r) => worker.proc.once('exit', (code) => r(code)));
      const t0 = Date.now();
      worker.proc.kill('SIGTERM');
      const code = await exited;
      const ms = Date.now() - t0;
      assert.ok(ms < 20_000, `took ${ms} ms:\n${worker.log()}`);
      assert.equal(code, 1, worker.log());
      assert.match(worker.log(), /does not answer: stopping without it; shutdown-0\.plan\.0 abandoned/);
    } finally {
      await worker.stop();
      await redis.stop();
      await rm(root, { recursive: true, force: true });
    }
  });
});
