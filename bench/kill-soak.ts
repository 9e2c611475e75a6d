// Soak of the fleet under kill -9 (the longer companion of test/workers/kill-points.test.ts): per run, two
// `mixforge worker` processes through the real launcher, one of them — its worker child — killed at a random time
// into a demo build on local disk; every published byte is compared with the in-process build, and temp files are
// counted. Run: npx tsx bench/kill-soak.ts [runs] [max kill delay ms]. Prints one line per run and a tally.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Redis } from 'ioredis';
import { generateDemoData } from '../demo/generate.ts';
import { shippedSpecPath } from '../demo/spec-overrides.ts';
import { startRedis } from '../dev/redis-server.ts';
import { loadSpec } from '../manifests/spec.ts';
import { makeBuildContext } from '../pipelines/context.ts';
import { runBuildInProcess } from '../pipelines/executor-inprocess.ts';
import { runBuildOnQueue } from '../workers/executor-bullmq.ts';

const runs = Number(process.argv[2] ?? 15);
const maxDelayMs = Number(process.argv[3] ?? 3000);
const LAUNCHER = join(import.meta.dirname, '..', 'bin', 'mixforge.js');

async function published(dir: string): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const rel = relative(dir, join(e.parentPath, e.name));
    if (!e.isFile() || (rel.startsWith('_build/') && !/\.tmp-/.test(rel))) continue;
    m.set(
      rel,
      createHash('sha256')
        .update(await readFile(join(dir, rel)))
        .digest('hex'),
    );
  }
  return m;
}

/** A worker through the launcher with an untuned environment, so the worker proper is the launcher's child. */
function startWorker(url: string, name: string): Promise<ChildProcess> {
  const env = { ...process.env };
  delete env.GLIBC_TUNABLES;
  const p = spawn(
    process.execPath,
    [
      LAUNCHER,
      'worker',
      '--redis',
      url,
      '--name',
      name,
      '--lock-duration',
      '2000',
      '--stalled-interval',
      '500',
    ],
    {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let log = '';
  return new Promise((resolve, reject) => {
    p.stderr?.on('data', (d: Buffer) => {
      log += d.toString('utf8');
      if (/serving mixforge-/.test(log)) resolve(p);
    });
    p.once('exit', (code) => reject(new Error(`${name} exited with ${code}:\n${log}`)));
  });
}

const childOf = (pid: number) =>
  Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0]) || undefined;

const root = await mkdtemp(join(tmpdir(), 'mixforge-kill-soak-'));
const data = join(root, 'data');
await generateDemoData(data);
const spec = await loadSpec(shippedSpecPath('demo'), { env: { MIXFORGE_DEMO_DATA: data }, set: [] });
const ref = makeBuildContext(spec, join(root, 'ref'));
await runBuildInProcess(ref, { concurrency: 2 });
const expected = await published(ref.out);
const redis = await startRedis();
let bad = 0;
try {
  for (let i = 0; i < runs; i++) {
    const client = new Redis(redis.url);
    await client.flushall();
    client.disconnect();
    const workers = await Promise.all([startWorker(redis.url, `a${i}`), startWorker(redis.url, `b${i}`)]);
    const ctx = makeBuildContext(spec, join(root, `fleet-${i}`));
    const delay = Math.floor(Math.random() * maxDelayMs);
    const victim = workers[i % 2] as ChildProcess;
    const timer = setTimeout(() => {
      const pid = victim.pid === undefined ? undefined : childOf(victim.pid);
      if (pid) process.kill(pid, 'SIGKILL');
    }, delay);
    const t0 = Date.now();
    let error = '';
    await runBuildOnQueue(ctx, { redis: redis.url, pollMs: 100 }).catch((err: unknown) => {
      error = String(err);
    });
    clearTimeout(timer);
    const got = await published(ctx.out);
    const diff = [...new Set([...expected.keys(), ...got.keys()])].filter(
      (k) => expected.get(k) !== got.get(k),
    );
    if (diff.length || error) bad++;
    process.stdout.write(
      `run ${i}: kill at ${delay} ms, build ${((Date.now() - t0) / 1000).toFixed(1)} s: ${error || (diff.length ? `DIFFERS ${diff.join(' ')}` : 'identical')}\n`,
    );
    for (const w of workers) w.kill('SIGKILL');
  }
} finally {
  await redis.stop();
  await rm(root, { recursive: true, force: true });
}
process.stdout.write(`${runs - bad} of ${runs} runs byte-identical to the in-process build\n`);
process.exit(bad ? 1 : 0);
