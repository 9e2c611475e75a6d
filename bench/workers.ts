// Benchmark of the BullMQ executor on the demo mixture (local disk as the shared storage, private Redis):
// throughput with 1 vs 2 worker processes, the BullMQ executor against the in-process executor at the same
// parallelism, and Redis memory per job (extrapolated to a million samples). Run: npx tsx bench/workers.ts [runs]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateDemoData } from '../demo/generate.ts';
import { shippedSpecPath } from '../demo/spec-overrides.ts';
import { startRedis } from '../dev/redis-server.ts';
import { spawnWorker, type WorkerProcess } from '../dev/worker-process.ts';
import { loadSpec } from '../manifests/spec.ts';
import { makeBuildContext } from '../pipelines/context.ts';
import { runBuildInProcess } from '../pipelines/executor-inprocess.ts';
import { GRAPH } from '../pipelines/graph.ts';
import { runBuildOnQueue } from '../workers/executor-bullmq.ts';

const runs = Number(process.argv[2] ?? 3);
const CLI = join(import.meta.dirname, '..', 'cli', 'main.ts');
const root = await mkdtemp(join(tmpdir(), 'mixforge-bench-workers-'));
const data = join(root, 'data');
await generateDemoData(data);
const spec = await loadSpec(shippedSpecPath('demo'), { env: { MIXFORGE_DEMO_DATA: data }, set: [] });
const redis = await startRedis();
let seq = 0;
const ctxFor = (label: string) => makeBuildContext(spec, join(root, `${label}-${seq++}`));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function timeInProcess(concurrency: number): Promise<{ s: number; rows: number }> {
  const t0 = performance.now();
  const m = await runBuildInProcess(ctxFor(`inproc-c${concurrency}`), { concurrency });
  return { s: (performance.now() - t0) / 1000, rows: m.totals.rows };
}

async function withWorkers<T>(n: number, concurrency: number, fn: () => Promise<T>): Promise<T> {
  const workers: WorkerProcess[] = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      spawnWorker(
        `b${i}`,
        CLI,
        ['worker', '--redis', redis.url, '--concurrency', String(concurrency), '--name', `b${i}`],
        {
          readyText: /serving mixforge-/,
        },
      ),
    ),
  );
  try {
    return await fn();
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
}

async function timeQueue(label: string): Promise<{ s: number; rows: number }> {
  const t0 = performance.now();
  const m = await runBuildOnQueue(ctxFor(label), { redis: redis.url, pollMs: 50 });
  if (!m) throw new Error('no manifest');
  return { s: (performance.now() - t0) / 1000, rows: m.totals.rows };
}

try {
  await timeInProcess(2); // warm-up: file cache, sharp, JIT
  const inproc1: number[] = [];
  const inproc2: number[] = [];
  let rows = 0;
  for (let i = 0; i < runs; i++) {
    inproc1.push((await timeInProcess(1)).s);
    const r = await timeInProcess(2);
    inproc2.push(r.s);
    rows = r.rows;
  }
  const one: number[] = [];
  await withWorkers(1, 1, async () => {
    for (let i = 0; i < runs; i++) one.push((await timeQueue('q1')).s);
  });
  const two: number[] = [];
  await withWorkers(2, 1, async () => {
    for (let i = 0; i < runs; i++) two.push((await timeQueue('q2')).s);
  });

  // Redis memory: one more build on a fresh database, jobs kept (as in production until they age out).
  await redis.command('FLUSHALL');
  const before = Number((await redis.info('memory')).get('used_memory'));
  const ctx = ctxFor('mem');
  let jobs = 0;
  await withWorkers(1, 2, async () => {
    await runBuildOnQueue(ctx, {
      redis: redis.url,
      pollMs: 50,
      onEvent: (e) => {
        if (e.type === 'stage-done') jobs += e.total;
      },
    });
  });
  const afterMem = Number((await redis.info('memory')).get('used_memory'));
  const perJob = (afterMem - before) / jobs;
  // A million samples at 10,000 records per partition: P = 100 partitions; shards of ~10,000 rows (the shipped
  // specs' shard_rows) S = 100; near_dedup's default 32 bands; one job per stage and partition, band or shard, as
  // the build graph fans out.
  const fanOut = { one: 1, partitions: 100, bands: 32, shards: 100 };
  const jobsPerMillion = GRAPH.reduce((n, stage) => n + fanOut[stage.fanOut], 0);

  const f = (x: number) => x.toFixed(2);
  const mi1 = median(inproc1);
  const mi2 = median(inproc2);
  const m1 = median(one);
  const m2 = median(two);
  console.log(`demo mixture: ${rows} rows, median of ${runs} runs each (local disk, 2-core machine)`);
  console.log(`in-process, concurrency 1:   ${f(mi1)} s  (${(rows / mi1).toFixed(0)} rows/s)`);
  console.log(`in-process, concurrency 2:   ${f(mi2)} s  (${(rows / mi2).toFixed(0)} rows/s)`);
  console.log(`BullMQ, 1 worker process:    ${f(m1)} s  (${(rows / m1).toFixed(0)} rows/s)`);
  console.log(`BullMQ, 2 worker processes:  ${f(m2)} s  (${(rows / m2).toFixed(0)} rows/s)`);
  console.log(`throughput 2 vs 1 worker processes: ×${f(m1 / m2)}`);
  console.log(`BullMQ (1 process) vs in-process (concurrency 1): ×${f(m1 / mi1)} time`);
  console.log(`BullMQ (2 processes) vs in-process (concurrency 2): ×${f(m2 / mi2)} time`);
  console.log(
    `Redis: ${jobs} jobs kept → ${((afterMem - before) / 1024).toFixed(0)} KiB, ${perJob.toFixed(0)} bytes/job`,
  );
  console.log(
    `Redis per million samples (${jobsPerMillion} jobs at 10,000 records per partition and shard): ~${((perJob * jobsPerMillion) / 1024).toFixed(0)} KiB`,
  );
} finally {
  await redis.stop();
  await rm(root, { recursive: true, force: true });
}
