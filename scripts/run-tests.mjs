// Runs every test/**/*.test.ts (or the files given as arguments), each with Node's own test runner through tsx, a few
// files at a time, longest first (scripts/test-durations.json), and prints each file's wall and CPU time at the end.
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';

// Longest files first so the lanes finish together: wall seconds per file of one measured run, only their order
// matters (`--write-durations` rewrites it from this run).
const DURATIONS = 'scripts/test-durations.json';
const LAST_RUN = '.cache/test-durations.json';
// Files not in DURATIONS (new ones) are assumed to be this long.
const UNKNOWN_S = 5;
// Per test, as before (`--test-timeout`); per file only a guard against a hung process (open handle, deadlock).
const TEST_TIMEOUT_MS = 300_000;
const FILE_TIMEOUT_MS = 20 * 60_000;
// GNU time gives each file's CPU time including the processes it starts (CLI runs, workers, redis-server).
const GNU_TIME = '/usr/bin/time';

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const args = process.argv.slice(2);
const writeDurations = args.includes('--write-durations');
const given = args.filter((a) => a !== '--write-durations');
const files = given.length > 0 ? given : findTests('test');
// One file more than cores: the slow files wait a good part of their time (job locks expiring, Redis timeouts,
// GPU readbacks, child processes starting), so two lanes on two cores left about half the CPU idle.
const jobs = Math.max(1, Number(process.env.MIXFORGE_TEST_JOBS ?? Math.min(4, availableParallelism() + 1)));
const known = existsSync(DURATIONS) ? JSON.parse(readFileSync(DURATIONS, 'utf8')) : {};
const expected = (f) => known[f] ?? UNKNOWN_S;
const queue = [...files].sort((a, b) => expected(b) - expected(a) || a.localeCompare(b));

const timeDir = mkdtempSync(join(tmpdir(), 'mixforge-test-times-'));
const useTime = existsSync(GNU_TIME);
const running = new Set();
const results = [];
const started = Date.now();

/** Seconds to one decimal; `?` where GNU time was missing. */
const secs = (x) => (Number.isFinite(x) ? x.toFixed(1) : '?');

function counts(text) {
  const get = (k) => Number(text.match(new RegExp(`^ℹ ${k} (\\d+)$`, 'm'))?.[1] ?? 0);
  return { tests: get('tests'), pass: get('pass'), fail: get('fail'), skipped: get('skipped') };
}

function runFile(file, index) {
  return new Promise((resolve) => {
    const timeOut = join(timeDir, `${index}.txt`);
    const node = [
      process.execPath,
      '--import',
      'tsx',
      '--test',
      '--test-reporter=spec',
      `--test-timeout=${TEST_TIMEOUT_MS}`,
      file,
    ];
    const argv = useTime ? [GNU_TIME, '-f', '%e %U %S', '-o', timeOut, ...node] : node;
    const t0 = Date.now();
    // Own process group, so a hung file is killed with everything it started (redis-server, workers, CLI runs).
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    running.add(child);
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    const guard = setTimeout(() => {
      output += `\nrun-tests: ${file} still running after ${FILE_TIMEOUT_MS / 1000} s, killed\n`;
      process.kill(-child.pid, 'SIGKILL');
    }, FILE_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      running.delete(child);
      const wall = (Date.now() - t0) / 1000;
      let cpu = Number.NaN;
      if (useTime && existsSync(timeOut)) {
        const [, user, sys] = readFileSync(timeOut, 'utf8').trim().split('\n').pop().split(' ').map(Number);
        cpu = user + sys;
      }
      const ok = code === 0;
      process.stdout.write(`\n━━ ${file} (${secs(wall)} s wall, ${secs(cpu)} s CPU)\n${output}`);
      if (!ok) process.stdout.write(`✖ ${file} exited with ${signal ?? code}\n`);
      results.push({ file, wall, cpu, ok, ...counts(output) });
      resolve();
    });
  });
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const child of running) process.kill(-child.pid, 'SIGTERM');
    process.exit(130);
  });
}

let next = 0;
async function lane() {
  while (next < queue.length) {
    const i = next++;
    await runFile(queue[i], i);
  }
}
await Promise.all(Array.from({ length: Math.min(jobs, queue.length) }, lane));
rmSync(timeDir, { recursive: true, force: true });

const total = (Date.now() - started) / 1000;
const sum = (k) => results.reduce((s, r) => s + r[k], 0);
const failed = results.filter((r) => !r.ok);
console.log('\nslowest files (wall s, CPU s):');
for (const r of [...results].sort((a, b) => b.wall - a.wall).slice(0, 25))
  console.log(`${secs(r.wall).padStart(7)} ${secs(r.cpu).padStart(7)}  ${r.file}`);
console.log(
  `\n${results.length} files, ${sum('tests')} tests: ${sum('pass')} pass, ${sum('fail')} fail, ${sum('skipped')} skipped;` +
    ` ${total.toFixed(1)} s wall, ${secs(sum('cpu'))} s CPU, ${jobs} at a time`,
);
for (const r of failed) console.log(`✖ ${r.file}`);
// Every file's latest time in LAST_RUN (runs of a few files update theirs); the committed order only on request.
const times = Object.fromEntries(results.map((r) => [r.file, Math.round(r.wall)]));
const sorted = (o) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
mkdirSync('.cache', { recursive: true });
const last = existsSync(LAST_RUN) ? JSON.parse(readFileSync(LAST_RUN, 'utf8')) : {};
writeFileSync(LAST_RUN, `${JSON.stringify(sorted({ ...last, ...times }), null, 2)}\n`);
if (writeDurations) writeFileSync(DURATIONS, `${JSON.stringify(sorted({ ...known, ...times }), null, 2)}\n`);
process.exit(failed.length > 0 ? 1 : 0);
