// The launcher's re-run with process-wide settings (bin/process-env.js): the child gets the malloc tuning, a
// process that already has it is not re-run, and the child does not outlive a parent killed with SIGKILL.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { GLIBC_TUNABLES } from '../../bin/process-env.js';
import { startRedis } from '../../dev/redis-server.ts';

let dir: string;
let script: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-launcher-'));
  script = join(dir, 'long-running.mjs');
  const processEnv = pathToFileURL(resolve('bin/process-env.js')).href;
  await writeFile(
    script,
    `import { rerunWithProcessEnv } from ${JSON.stringify(processEnv)};
if (!(await rerunWithProcessEnv())) {
  console.log(JSON.stringify({ pid: process.pid, tunables: process.env.GLIBC_TUNABLES ?? null }));
  setInterval(() => {}, 1000);
}
`,
  );
});
after(() => rm(dir, { recursive: true, force: true }));

/** Starts the script and resolves with the process that printed its line (itself or its re-run child). */
function start(
  env: NodeJS.ProcessEnv,
): Promise<{ proc: ChildProcess; pid: number; tunables: string | null }> {
  const proc = spawn(process.execPath, [script], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      const line = out.split('\n')[0];
      if (out.includes('\n'))
        resolve({ proc, ...(JSON.parse(line) as { pid: number; tunables: string | null }) });
    });
    proc.once('exit', (code) => reject(new Error(`exited with ${code} before printing`)));
  });
}

/** This environment without the malloc tuning, so the launcher re-runs. */
function untunedEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.GLIBC_TUNABLES;
  return env;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('re-runs with the malloc tuning; the child stops when the parent is killed with SIGKILL', {
  skip: process.platform !== 'linux',
}, async () => {
  const { proc, pid, tunables } = await start(untunedEnv());
  assert.notEqual(pid, proc.pid, 'a re-run child printed the line');
  assert.equal(tunables, GLIBC_TUNABLES);
  proc.kill('SIGKILL');
  let waited = 0;
  while (alive(pid) && waited < 10_000) {
    await new Promise((r) => setTimeout(r, 50));
    waited += 50;
  }
  assert.equal(alive(pid), false, 'the re-run child exited after its parent was killed');
});

test('the launcher dies of the signal that killed its child, so callers see it', {
  skip: process.platform !== 'linux',
}, async () => {
  const { proc, pid } = await start(untunedEnv());
  const exited = new Promise<NodeJS.Signals | null>((r) => proc.once('exit', (_code, signal) => r(signal)));
  process.kill(pid, 'SIGTERM');
  assert.equal(await exited, 'SIGTERM');
});

test('a process that has the settings already is not re-run', async () => {
  const { proc, pid, tunables } = await start({ ...process.env, GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' });
  assert.equal(pid, proc.pid);
  assert.equal(tunables, 'glibc.malloc.arena_max=2');
  proc.kill('SIGTERM');
});

test('Ctrl-C on a terminal reaches `mixforge worker` once, though the terminal and the launcher both deliver it', {
  skip: process.platform !== 'linux',
}, async () => {
  const redis = await startRedis();
  // A process group of its own, signalled as a whole: what a terminal does to its foreground job on Ctrl-C.
  const proc = spawn(process.execPath, [resolve('bin/mixforge.js'), 'worker', '--redis', redis.url], {
    env: untunedEnv(),
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString('utf8');
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  try {
    for (let i = 0; i < 400 && !/serving mixforge-/.test(err); i++)
      await new Promise((r) => setTimeout(r, 25));
    assert.match(err, /serving mixforge-/);
    try {
      process.kill(-(proc.pid as number), 'SIGINT');
    } catch (e) {
      // Seen once in CI (ESRCH at load ~10): say what the worker printed rather than only that it is gone.
      assert.fail(`worker group gone before Ctrl-C (${String(e)}; exit ${proc.exitCode}): ${err}`);
    }
    assert.equal(await exited, 0, err);
    assert.match(err, /SIGINT: finishing running jobs/);
    assert.doesNotMatch(err, /handing running jobs back/);
  } finally {
    // A failed kill must not skip stopping Redis: its child process would keep the file running until the runner's
    // time limit.
    try {
      if (proc.exitCode === null) process.kill(-(proc.pid as number), 'SIGKILL');
    } finally {
      await redis.stop();
    }
  }
});
