// `mixforge train` end to end through bin/mixforge.js on lavapipe: a short run writes its metrics, loss curve and
// checkpoint and exits (the preprocessing workers do not keep it alive); --resume of a finished run does nothing;
// --resume --steps N extends a run on a recomputed schedule; Ctrl-C writes a checkpoint; stage1 without weights is
// refused; `model info` and `train` reject the same resolutions.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { cosineWithWarmup } from '../../train-bridge/train/schedule.ts';
import { trainPairsMixture } from '../train-bridge/train/fixtures.ts';

const BIN = resolve('bin/mixforge.js');
const TINY = [
  '--objective',
  'contrastive',
  '--model',
  'fastvithd-tiny',
  '--preset',
  'stage1.5',
  '--resolution',
  '64',
  '--batch-size',
  '8',
];
let manifest: string;
let root: string;
before(async () => {
  manifest = await trainPairsMixture();
  root = await mkdtemp(join(tmpdir(), 'mixforge-train-cli-'));
});
after(() => rm(root, { recursive: true, force: true }));

function mixforge(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 240_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout, stderr: r.stderr };
}

async function metricSteps(dir: string): Promise<Array<{ step: number; lr: number }>> {
  return (await readFile(join(dir, 'metrics.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { step: number; lr: number });
}

test('a 3-update run, a no-op resume, an extension to 5 on a recomputed schedule, refused changes', async () => {
  const dir = join(root, 'run');
  const train = (...args: string[]) => mixforge('train', manifest, '--checkpoint-dir', dir, ...args);
  const run = train(...TINY, '--steps', '3');
  assert.equal(run.code, 0, run.out);
  assert.match(run.out, /step 3\/3 {2}loss \d/);
  assert.match(run.out, /done: 3 updates; checkpoint .*step-00000003/);
  assert.deepEqual(
    (await metricSteps(dir)).map((m) => m.step),
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
  assert.equal((await metricSteps(dir)).length, 3);

  const longer = train('--resume', '--steps', '5');
  assert.equal(longer.code, 0, longer.out);
  assert.match(longer.out, /extending the run from 3 to 5 updates: .*recomputed over 5 updates/);
  assert.match(longer.out, /for 5 updates .*resuming at update 3/);
  assert.match(longer.out, /done: 5 updates; checkpoint .*step-00000005/);
  const metrics = await metricSteps(dir);
  assert.deepEqual(
    metrics.map((m) => m.step),
    [1, 2, 3, 4, 5],
  );
  // Updates 4 and 5 (0-based 3 and 4) follow the 5-update curve of stage1.5 (peak 2e-5, warmup ratio 0.03).
  assert.equal(metrics[3].lr, cosineWithWarmup(3, 5, 2e-5, 0.03));
  assert.equal(metrics[4].lr, cosineWithWarmup(4, 5, 2e-5, 0.03));
  assert.notEqual(metrics[3].lr, cosineWithWarmup(3, 3, 2e-5, 0.03) || -1);
  const trainer = JSON.parse(await readFile(join(dir, 'step-00000005', 'trainer.json'), 'utf8'));
  assert.equal(trainer.config.steps, 5);

  const shorter = train('--resume', '--steps', '4');
  assert.equal(shorter.code, 1);
  assert.match(shorter.out, /--steps: 4 is shorter than the checkpoint's run of 5 updates \(5 done\)/);
  const batch = train('--resume', '--batch-size', '4');
  assert.equal(batch.code, 1);
  assert.match(batch.out, /--batch-size: 4 differs from the checkpoint's 8/);
});

test('Ctrl-C finishes the update in progress, writes a checkpoint and exits 130', async () => {
  const dir = join(root, 'interrupted');
  const child = spawn(
    process.execPath,
    [BIN, 'train', manifest, '--checkpoint-dir', dir, ...TINY, '--steps', '40'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let signalled = false;
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    // The launcher forwards SIGINT to the CLI process it runs.
    if (!signalled && /step 1\/40/.test(out)) {
      signalled = true;
      child.kill('SIGINT');
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const code = await new Promise<number | null>((done) => child.on('close', (c) => done(c)));
  assert.equal(code, 130, out);
  const m = /interrupted at update (\d+) of 40; checkpoint .*step-(\d+)/.exec(out);
  assert.ok(m, out);
  const stopped = Number(m[1]);
  assert.ok(stopped >= 1 && stopped < 40, out);
  assert.equal(Number(m[2]), stopped);
  assert.match(out, /--resume/);
  assert.deepEqual(JSON.parse(await readFile(join(dir, 'latest.json'), 'utf8')).step, stopped);
  assert.equal((await metricSteps(dir)).length, stopped);
  assert.deepEqual(
    (await readdir(dir)).filter((f) => f.includes('.tmp')),
    [],
  );
});

test('stage1 (the default preset) without --weights is refused before any GPU work', () => {
  const r = mixforge(
    'train',
    manifest,
    '--checkpoint-dir',
    join(root, 'stage1'),
    '--objective',
    'contrastive',
    '--model',
    'fastvithd-tiny',
  );
  assert.equal(r.code, 1);
  assert.match(r.out, /--weights: stage1 freezes the encoder, and without --weights it stays at its random/);
  assert.match(r.out, /--random-encoder to run anyway/);
  assert.doesNotMatch(r.out, /gpu: /);
});

test('`model info` and `train` accept and reject the same --resolution values', () => {
  for (const bad of ['100', 'abc']) {
    const info = mixforge('model', 'info', 'fastvithd-tiny', '--resolution', bad);
    const train = mixforge(
      'train',
      manifest,
      '--checkpoint-dir',
      join(root, 'res'),
      ...TINY.slice(0, 6),
      '--resolution',
      bad,
    );
    assert.equal(info.code, 1, bad);
    assert.equal(train.code, 1, bad);
    const said = /mixforge: (--resolution: .*)/.exec(info.stderr)?.[1];
    assert.ok(said, info.out);
    assert.match(train.stderr, new RegExp(said.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  }
  const ok = mixforge('model', 'info', 'fastvithd-tiny', '--resolution', '192', '--json');
  assert.equal(ok.code, 0, ok.out);
  assert.equal(JSON.parse(ok.stdout).resolution, 192);
});
