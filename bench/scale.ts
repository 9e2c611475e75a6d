// Scale benchmark: builds the synthetic mixture of dev/scale-inputs.ts (small real JPEGs, four components, dedup,
// takes, a filter) at each size with `mixforge build`, in-process and on BullMQ with W worker processes, and records
// wall, CPU (every process: build, workers, Redis), peak RSS per process, peak temporary disk (out folder + TMPDIR,
// sampled), Redis memory, and each stage's wall and CPU time. Checks accounting against what was generated and runs
// `mixforge verify`. Each run is appended to a results file; the tables (per size, and the per-stage ratio between
// consecutive sizes: linear = size ratio) are printed from that file, so sizes run on different occasions compare.
//
//   npx tsx bench/scale.ts --sizes 10000,100000 [--modes inprocess,bullmq] [--workers 2] [--root DIR]
//                          [--results FILE] [--keep] [--keep-inputs] [--set path=value] [--partition-records n]
//   (--keep leaves each run's output and TMPDIR; --keep-inputs the generated inputs, reused by a later run;
//   --generate-only --keep-inputs writes the inputs and stops)
//   npx tsx bench/scale.ts --report FILE
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { appendFile, readdir, readFile, rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { startRedis, type TestRedis } from '../dev/redis-server.ts';
import { generateScaleInputs, type ScaleInputs } from '../dev/scale-inputs.ts';
import type { DoneMarker } from '../pipelines/job-envelope.ts';

const option = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const REPO = join(import.meta.dirname, '..');
/** `--set path=value` (a spec override, e.g. output.shard_rows to vary S alone) and `--partition-records n` (to
 * vary P alone), passed to the build. */
const setOption = [
  option('set') && `--set ${option('set')}`,
  option('partition-records') && `--partition-records ${option('partition-records')}`,
]
  .filter(Boolean)
  .join(' ');
const buildSet = setOption ? setOption.split(' ') : [];
const CLI = join(REPO, 'bin', 'mixforge.js');
const TICKS = 100; // USER_HZ on Linux

interface StageFigures {
  jobs: number;
  rows: number;
  /** Wall seconds from the executor's stage-done event. */
  seconds: number;
  /** CPU seconds of every process of the build between the previous stage's end and this one's. */
  cpu: number;
  /** Sum of the jobs' own durations (done markers): the work a fleet of N spreads over N. */
  jobSeconds: number;
}

interface RunRecord {
  size: number;
  mode: string;
  workers: number;
  when: string;
  wall: number;
  cpu: { total: number; build: number; workers: number[]; redis: number };
  rssMb: { build: number; workers: number[]; redis: number };
  diskMb: { inputs: number; peakOut: number; peakTmp: number; peakTotal: number; published: number };
  redis?: { usedMemoryPeakMb: number; usedMemoryEndMb: number; keys: number };
  stages: Record<string, StageFigures>;
  load: { start: number; mean: number; end: number };
  rows: number;
  shards: number;
  accountingOk: boolean;
  verify: { ok: boolean; seconds: number };
}

/**
 * utime+stime (+ waited children) of every process in the trees under `roots`, in seconds. Synchronous, so a
 * stage's figure is read when its event arrives and events keep their order.
 */
function treeCpu(roots: number[]): number {
  const procs = new Map<number, { ppid: number; ticks: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields after comm: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14)
      procs.set(Number(name), { ppid: Number(f[1]), ticks: +f[11] + +f[12] + +f[13] + +f[14] });
    } catch {
      // exited meanwhile
    }
  }
  const children = new Map<number, number[]>();
  for (const [pid, p] of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), pid]);
  let ticks = 0;
  const todo = [...roots];
  while (todo.length) {
    const pid = todo.pop() as number;
    ticks += procs.get(pid)?.ticks ?? 0;
    todo.push(...(children.get(pid) ?? []));
  }
  return ticks / TICKS;
}

async function duMb(path: string): Promise<number> {
  const out = await capture('du', ['-sk', path]).catch(() => '0');
  return Number(out.split('\t')[0] || 0) / 1024;
}

function capture(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
    });
    p.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err}`)),
    );
  });
}

/** A process under GNU time (-o file: elapsed, user, sys, max RSS of the largest process in its tree). */
interface Timed {
  pid: number;
  exited: Promise<number>;
  times: () => Promise<{ user: number; sys: number; maxRssMb: number }>;
  output: () => string;
}

function timed(
  args: string[],
  timeFile: string,
  env: NodeJS.ProcessEnv,
  onLine?: (l: string) => void,
): Timed {
  const p = spawn('/usr/bin/time', ['-f', '%U %S %M', '-o', timeFile, process.execPath, CLI, ...args], {
    cwd: REPO,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  let partial = '';
  p.stdout.on('data', (d: Buffer) => {
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) onLine?.(l);
    tail = (tail + d.toString()).slice(-20_000);
  });
  p.stderr.on('data', (d: Buffer) => {
    tail = (tail + d.toString()).slice(-20_000);
  });
  const exited = new Promise<number>((r) => p.once('exit', (code) => r(code ?? 1)));
  return {
    pid: p.pid as number,
    exited,
    output: () => tail,
    times: () => readTimes(timeFile),
  };
}

async function readTimes(timeFile: string): Promise<{ user: number; sys: number; maxRssMb: number }> {
  const [user, sys, kb] = (await readFile(timeFile, 'utf8')).trim().split('\n').at(-1)?.split(' ') ?? [];
  return { user: Number(user), sys: Number(sys), maxRssMb: Number(kb) / 1024 };
}

/** The pid of `parent`'s first child (the node launcher under GNU time). */
async function childOf(parent: number): Promise<number | undefined> {
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    if (stat && Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) return Number(name);
  }
  return undefined;
}

async function startWorker(
  i: number,
  redis: TestRedis,
  runDir: string,
  env: NodeJS.ProcessEnv,
): Promise<Timed> {
  const w = timed(
    ['worker', '--redis', redis.url, '--concurrency', '1', '--name', `w${i}`],
    join(runDir, `time-w${i}.txt`),
    env,
  );
  const deadline = Date.now() + 60_000;
  while (!/serving mixforge-/.test(w.output())) {
    if (Date.now() > deadline) throw new Error(`worker w${i} not ready: ${w.output()}`);
    const code = await Promise.race([
      w.exited,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 100)),
    ]);
    if (code !== undefined) throw new Error(`worker w${i} exited ${code}: ${w.output()}`);
  }
  return w;
}

async function stopWorker(w: Timed): Promise<void> {
  const launcher = await childOf(w.pid);
  if (launcher) process.kill(launcher, 'SIGTERM');
  await w.exited;
}

async function redisInfo(redis: TestRedis, section: string, field: string): Promise<number> {
  return Number((await redis.info(section)).get(field));
}

async function runOnce(inputs: ScaleInputs, mode: 'inprocess' | 'bullmq', workerCount: number, root: string) {
  const runDir = join(root, `run-${inputs.n}-${mode}${setOption ? '-set' : ''}`);
  const out = join(runDir, 'out');
  const tmp = join(runDir, 'tmp');
  await rm(runDir, { recursive: true, force: true });
  await capture('mkdir', ['-p', tmp]);
  const env = { ...process.env, TMPDIR: tmp };
  const redis = mode === 'bullmq' ? await startRedis() : undefined;
  const workers: Timed[] = [];
  try {
    if (redis) for (let i = 0; i < workerCount; i++) workers.push(await startWorker(i, redis, runDir, env));
    const redisCpu0 = redis
      ? (await redisInfo(redis, 'cpu', 'used_cpu_user')) + (await redisInfo(redis, 'cpu', 'used_cpu_sys'))
      : 0;
    const workerCpu0 = workers.map((w) => treeCpu([w.pid]));
    const load0 = loadavg()[0];
    const loads: number[] = [];
    const stageEvents: { stage: string; total: number; rows: number; seconds: number; cpu: number }[] = [];
    let roots: number[] = [];
    const cpuNow = () => treeCpu(roots) - workerCpu0.reduce((a, b) => a + b, 0);
    const t0 = performance.now();
    const build = timed(
      ['build', inputs.spec, '--out', out, '--json', ...(redis ? ['--redis', redis.url] : []), ...buildSet],
      join(runDir, 'time-build.txt'),
      env,
      (line) => {
        if (!line.startsWith('{')) return;
        const e = JSON.parse(line) as {
          type: string;
          stage: string;
          total: number;
          rows: number;
          seconds: number;
        };
        if (e.type !== 'stage-done') return;
        const cpu = cpuNow();
        stageEvents.push({ stage: e.stage, total: e.total, rows: e.rows, seconds: e.seconds, cpu });
        // A long run shows its progress (and leaves stage figures behind if it is stopped).
        console.log(
          `${new Date().toISOString()} ${inputs.n} ${mode}: ${e.stage} done, ${e.total} jobs, ${e.rows} rows, ${f1(e.seconds)} s, CPU so far ${f1(cpu)} s, load ${f1(loadavg()[0])}`,
        );
      },
    );
    roots = [build.pid, ...workers.map((w) => w.pid)];
    let peakOut = 0;
    let peakTmp = 0;
    let peakTotal = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [o, t] = await Promise.all([duMb(out), duMb(tmp)]);
        peakOut = Math.max(peakOut, o);
        peakTmp = Math.max(peakTmp, t);
        peakTotal = Math.max(peakTotal, o + t);
        loads.push(loadavg()[0]);
        await new Promise((r) => setTimeout(r, 2000));
      }
    })();
    const code = await build.exited;
    const wall = (performance.now() - t0) / 1000;
    sampling = false;
    await sampler;
    if (code !== 0) throw new Error(`build exited ${code}:\n${build.output()}`);
    const redisFigures = redis
      ? {
          usedMemoryPeakMb: (await redisInfo(redis, 'memory', 'used_memory_peak')) / 2 ** 20,
          usedMemoryEndMb: (await redisInfo(redis, 'memory', 'used_memory')) / 2 ** 20,
          keys: Number(await redis.command('DBSIZE')),
          rssMb: (await redisInfo(redis, 'memory', 'used_memory_rss')) / 2 ** 20,
          cpu:
            (await redisInfo(redis, 'cpu', 'used_cpu_user')) +
            (await redisInfo(redis, 'cpu', 'used_cpu_sys')) -
            redisCpu0,
        }
      : undefined;
    for (const w of workers) await stopWorker(w);
    workers.length = 0;
    const bt = await build.times();
    const wts = await Promise.all(
      Array.from({ length: mode === 'bullmq' ? workerCount : 0 }, (_, i) =>
        readTimes(join(runDir, `time-w${i}.txt`)),
      ),
    );

    // Per-stage job seconds from the done markers (kept after finalize).
    const jobSeconds: Record<string, number> = {};
    const doneDir = join(out, '_build', 'done');
    for (const f of await readdir(doneDir)) {
      const m = JSON.parse(await readFile(join(doneDir, f), 'utf8')) as Partial<DoneMarker>;
      if (!m.stage || !m.startedAt || !m.finishedAt) continue;
      jobSeconds[m.stage] =
        (jobSeconds[m.stage] ?? 0) + (Date.parse(m.finishedAt) - Date.parse(m.startedAt)) / 1000;
    }
    const stages: Record<string, StageFigures> = {};
    let prevCpu = 0;
    for (const e of stageEvents) {
      stages[e.stage] = {
        jobs: e.total,
        rows: e.rows,
        seconds: e.seconds,
        // The last event can be read after the build's processes are gone: unknown rather than negative.
        cpu: e.cpu >= prevCpu ? e.cpu - prevCpu : Number.NaN,
        jobSeconds: jobSeconds[e.stage] ?? 0,
      };
      prevCpu = e.cpu;
    }

    // Accounting: what the build counted against what was generated.
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as {
      components: {
        name: string;
        counts: { in: number; kept: number; emitted: number; dropped: Record<string, number> };
      }[];
      totals: { rows: number; shards: number };
    };
    const problems: string[] = [];
    let dedup = 0;
    let textOnly = 0;
    for (const c of manifest.components) {
      const dropped = Object.values(c.counts.dropped).reduce((a, b) => a + b, 0);
      if (c.counts.in !== c.counts.kept + dropped) problems.push(`${c.name}: in != kept + dropped`);
      if (c.counts.in !== inputs.expected.in[c.name])
        problems.push(`${c.name}: in ${c.counts.in}, generated ${inputs.expected.in[c.name]}`);
      dedup += c.counts.dropped.dedup ?? 0;
      textOnly += c.counts.dropped['filter:image_only'] ?? 0;
    }
    if (dedup !== inputs.expected.duplicates)
      problems.push(`dedup dropped ${dedup}, generated ${inputs.expected.duplicates}`);
    if (textOnly !== inputs.expected.textOnly)
      problems.push(`filter dropped ${textOnly}, generated ${inputs.expected.textOnly}`);
    if (problems.length) console.error(`accounting problems: ${problems.join('; ')}`);
    const tv = performance.now();
    const verifyOk = await capture(process.execPath, [CLI, 'verify', out]).then(
      () => true,
      (err: Error) => {
        console.error(err.message);
        return false;
      },
    );
    const verifySeconds = (performance.now() - tv) / 1000;

    const buildCpu = bt.user + bt.sys;
    // Whole worker processes (start-up and shutdown included, like the build's figure).
    const wCpu = wts.map((t) => t.user + t.sys);
    const record: RunRecord = {
      size: inputs.n,
      // Runs with spec overrides are their own rows (and ratios) in the report.
      mode: setOption ? `${mode} ${setOption}` : mode,
      workers: mode === 'bullmq' ? workerCount : 0,
      when: new Date().toISOString(),
      wall,
      cpu: {
        total: buildCpu + wCpu.reduce((a, b) => a + b, 0) + (redisFigures?.cpu ?? 0),
        build: buildCpu,
        workers: wCpu,
        redis: redisFigures?.cpu ?? 0,
      },
      rssMb: { build: bt.maxRssMb, workers: wts.map((t) => t.maxRssMb), redis: redisFigures?.rssMb ?? 0 },
      diskMb: {
        inputs: await duMb(inputs.dir),
        peakOut,
        peakTmp,
        peakTotal,
        published: await duMb(out),
      },
      ...(redisFigures
        ? {
            redis: {
              usedMemoryPeakMb: redisFigures.usedMemoryPeakMb,
              usedMemoryEndMb: redisFigures.usedMemoryEndMb,
              keys: redisFigures.keys,
            },
          }
        : {}),
      stages,
      load: {
        start: load0,
        mean: loads.reduce((a, b) => a + b, 0) / Math.max(1, loads.length),
        end: loadavg()[0],
      },
      rows: manifest.totals.rows,
      shards: manifest.totals.shards,
      accountingOk: problems.length === 0,
      verify: { ok: verifyOk, seconds: verifySeconds },
    };
    return record;
  } finally {
    for (const w of workers) await stopWorker(w).catch(() => undefined);
    await redis?.stop();
    if (!process.argv.includes('--keep')) await rm(runDir, { recursive: true, force: true });
  }
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');

function report(records: RunRecord[]): void {
  const sizes = [...new Set(records.map((r) => r.size))].sort((a, b) => a - b);
  // The latest run of each (size, mode).
  const latest = new Map<string, RunRecord>();
  for (const r of records) latest.set(`${r.size}/${r.mode}`, r);
  const modes = [...new Set(records.map((r) => r.mode))];
  for (const size of sizes) {
    console.log(`\n### ${size.toLocaleString('en')} input records`);
    console.log(
      '| executor | wall s | CPU s (build + workers + Redis) | samples/CPU-s | peak RSS MB (build; workers; Redis) | peak temp disk MB (out + TMPDIR) | published MB | inputs MB | Redis used_memory_peak MB (keys) | load avg (start/mean/end) | rows | accounting | verify |',
    );
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const mode of modes) {
      const r = latest.get(`${size}/${mode}`);
      if (!r) continue;
      const label = `${r.mode.startsWith('bullmq') ? `BullMQ, ${r.workers} workers` : 'in-process'}${r.mode.replace(/^\S+/, '')}`;
      const cpu = `${f1(r.cpu.total)} (${f1(r.cpu.build)} + ${r.cpu.workers.map(f1).join(' + ') || '0'} + ${f1(r.cpu.redis)})`;
      const rss = `${f1(r.rssMb.build)}; ${r.rssMb.workers.map(f1).join(', ') || '–'}; ${r.rssMb.redis ? f1(r.rssMb.redis) : '–'}`;
      const redis = r.redis ? `${f2(r.redis.usedMemoryPeakMb)} (${r.redis.keys})` : '–';
      console.log(
        `| ${label} | ${f1(r.wall)} | ${cpu} | ${f1(r.size / r.cpu.total)} | ${rss} | ${f1(r.diskMb.peakTotal)} (${f1(r.diskMb.peakOut)} + ${f1(r.diskMb.peakTmp)}) | ${f1(r.diskMb.published)} | ${f1(r.diskMb.inputs)} | ${redis} | ${f1(r.load.start)}/${f1(r.load.mean)}/${f1(r.load.end)} | ${r.rows} | ${r.accountingOk ? 'ok' : 'FAILED'} | ${r.verify.ok ? `ok (${f1(r.verify.seconds)} s)` : 'FAILED'} |`,
      );
    }
    for (const mode of modes) {
      const r = latest.get(`${size}/${mode}`);
      if (!r) continue;
      console.log(`\n${r.mode} stages at ${size}: stage | jobs | wall s | CPU s | job-seconds`);
      for (const [stage, s] of Object.entries(r.stages))
        console.log(`| ${stage} | ${s.jobs} | ${f2(s.seconds)} | ${f2(s.cpu)} | ${f2(s.jobSeconds)} |`);
    }
  }
  for (let i = 1; i < sizes.length; i++) {
    const [a, b] = [sizes[i - 1], sizes[i]];
    for (const mode of modes) {
      const ra = latest.get(`${a}/${mode}`);
      const rb = latest.get(`${b}/${mode}`);
      if (!ra || !rb) continue;
      console.log(
        `\n${mode}: ${b.toLocaleString('en')} / ${a.toLocaleString('en')} (linear = ${f1(b / a)}): wall ${f2(rb.wall / ra.wall)}, CPU ${f2(rb.cpu.total / ra.cpu.total)}, peak temp disk ${f2(rb.diskMb.peakTotal / ra.diskMb.peakTotal)}${rb.redis && ra.redis ? `, Redis peak ${f2(rb.redis.usedMemoryPeakMb / ra.redis.usedMemoryPeakMb)}` : ''}, peak RSS build ${f2(rb.rssMb.build / ra.rssMb.build)}`,
      );
      console.log('| stage | wall ratio | CPU ratio | job-seconds ratio |');
      console.log('| --- | --- | --- | --- |');
      for (const stage of Object.keys(rb.stages)) {
        const sa = ra.stages[stage];
        const sb = rb.stages[stage];
        if (!sa) continue;
        console.log(
          `| ${stage} | ${f2(sb.seconds / sa.seconds)} | ${f2(sb.cpu / sa.cpu)} | ${f2(sb.jobSeconds / sa.jobSeconds)} |`,
        );
      }
    }
  }
}

async function readResults(file: string): Promise<RunRecord[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as RunRecord);
}

async function main(): Promise<void> {
  const reportFile = option('report');
  if (reportFile) {
    report(await readResults(reportFile));
    return;
  }
  const root = option('root') ?? '/tmp/mixforge-scale';
  const results = option('results') ?? join(root, 'results.jsonl');
  const sizes = (option('sizes') ?? '10000').split(',').map(Number);
  const modes = (option('modes') ?? 'inprocess,bullmq').split(',') as ('inprocess' | 'bullmq')[];
  const workerCount = Number(option('workers') ?? 2);
  for (const size of sizes) {
    const tg = performance.now();
    const inputs = await generateScaleInputs(join(root, `inputs-${size}`), size);
    console.log(`inputs of ${size}: ${f1((performance.now() - tg) / 1000)} s (generated or reused)`);
    if (process.argv.includes('--generate-only')) continue;
    for (const mode of modes) {
      console.log(`${new Date().toISOString()} ${size} ${mode}: building (load ${f1(loadavg()[0])})`);
      const r = await runOnce(inputs, mode, workerCount, root);
      await appendFile(results, `${JSON.stringify(r)}\n`);
      console.log(
        `${new Date().toISOString()} ${size} ${mode}: wall ${f1(r.wall)} s, CPU ${f1(r.cpu.total)} s, rows ${r.rows}, accounting ${r.accountingOk}, verify ${r.verify.ok}`,
      );
    }
    if (!process.argv.includes('--keep-inputs')) await rm(inputs.dir, { recursive: true, force: true });
  }
  report(await readResults(results));
}

await main();
