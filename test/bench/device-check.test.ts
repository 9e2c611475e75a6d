// The device check's plan (the full run is for GPU machines; its --quick run takes minutes on lavapipe): the steps
// fit the 8-minute bound, the full plan measures what the brief lists at the sizes it lists, and bad options fail.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

function run(...args: string[]) {
  return spawnSync('bash', ['bench/device-check.sh', ...args], { encoding: 'utf8' });
}

function plan(...args: string[]): { limit: number; name: string; cmd: string }[] {
  const r = run('--plan', ...args);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => {
      const [limit, name, cmd] = l.split('\t') as [string, string, string];
      return { limit: Number(limit), name, cmd };
    });
}

test('the full plan covers every figure of the device check within 8 minutes', () => {
  const steps = plan();
  const total = steps.reduce((s, x) => s + x.limit, 0);
  // Setup (npm ci when node_modules is missing, apt) gets what the steps leave of 480 s.
  assert.ok(total <= 420, `step limits add up to ${total}s`);
  const cmds = steps.map((s) => s.cmd).join('\n');
  assert.match(cmds, /gpu selftest --filter gemm/);
  assert.match(cmds, /bench\/gemm\.ts --sizes 1024,2048,4096,8192/);
  assert.match(cmds, /bench\/train\.ts --model fastvithd --resolution 256/);
  assert.match(cmds, /bench\/train\.ts --model fastvithd --resolution 1024/);
  assert.match(cmds, /bench\/train-lm\.ts --model fastvlm-0\.5b/);
});

test('quick mode runs the same benches at small sizes', () => {
  const steps = plan('--quick');
  assert.deepEqual(
    steps.map((s) => s.cmd.split(' ').slice(0, 3).join(' ')),
    plan()
      .map((s) => s.cmd.split(' ').slice(0, 3).join(' '))
      .filter((c, i, a) => a.indexOf(c) === i),
  );
  assert.ok(steps.reduce((s, x) => s + x.limit, 0) <= 420);
});

test('unknown options and bad --torch values are refused', () => {
  assert.equal(run('--bogus').status, 2);
  assert.equal(run('--torch', 'rocm', '--plan').status, 2);
});
