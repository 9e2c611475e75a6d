// `mixforge worker` stops on SIGTERM/SIGINT within a bounded time even when its Redis has gone away: it cannot
// record or hand back anything then, so it says so and exits instead of waiting for Redis forever.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startRedis } from '../../dev/redis-server.ts';

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
