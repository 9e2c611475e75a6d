// `mixforge train` end to end through bin/mixforge.js on lavapipe: a short run writes its metrics, loss curve and
// checkpoint and exits (the preprocessing workers do not keep it alive); --resume of a finished run does nothing;
// a resume that changes the schedule is refused with the flag named.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { trainPairsMixture } from '../train-bridge/train/fixtures.ts';

const BIN = resolve('bin/mixforge.js');
let manifest: string;
let dir: string;
before(async () => {
  manifest = await trainPairsMixture();
  dir = await mkdtemp(join(tmpdir(), 'mixforge-train-cli-'));
});
after(() => rm(dir, { recursive: true, force: true }));

function train(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, 'train', manifest, '--checkpoint-dir', dir, ...args], {
    encoding: 'utf8',
    timeout: 240_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

test('a 3-update run, a no-op resume of the finished run, a refused schedule change', async () => {
  const run = train(
    '--model',
    'fastvithd-tiny',
    '--preset',
    'stage1.5',
    '--resolution',
    '64',
    '--batch-size',
    '8',
    '--steps',
    '3',
  );
  assert.equal(run.code, 0, run.out);
  assert.match(run.out, /step 3\/3 {2}loss \d/);
  assert.match(run.out, /done: 3 updates; checkpoint .*step-00000003/);
  const metrics = (await readFile(join(dir, 'metrics.jsonl'), 'utf8')).trim().split('\n');
  assert.deepEqual(
    metrics.map((l) => (JSON.parse(l) as { step: number }).step),
    [1, 2, 3],
  );
  const png = await readFile(join(dir, 'loss.png'));
  assert.deepEqual([...png.subarray(1, 4)], [...Buffer.from('PNG')]);
  assert.deepEqual(JSON.parse(await readFile(join(dir, 'latest.json'), 'utf8')), {
    step: 3,
    path: 'step-00000003',
  });

  const again = train('--resume');
  assert.equal(again.code, 0, again.out);
  assert.match(again.out, /resuming at update 3/);
  assert.equal((await readFile(join(dir, 'metrics.jsonl'), 'utf8')).trim().split('\n').length, 3);

  const changed = train('--resume', '--steps', '5');
  assert.notEqual(changed.code, 0);
  assert.match(changed.out, /--steps: 5 differs from the checkpoint's 3/);
});
