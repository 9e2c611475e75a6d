// `mixforge train` with its default objective (FastVLM next-token) end to end through bin/mixforge.js on lavapipe:
// a 2-update fastvlm-tiny run writes metrics and a checkpoint whose model/ folder is in the published layout; a run
// that cannot fit the adapter is refused in one line naming the change to make; `model info` gives each part's count.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { trainPairsMixture } from '../train-bridge/train/fixtures.ts';

const BIN = resolve('bin/mixforge.js');
let manifest: string;
let root: string;
before(async () => {
  manifest = await trainPairsMixture();
  root = await mkdtemp(join(tmpdir(), 'mixforge-train-lm-cli-'));
});
after(() => rm(root, { recursive: true, force: true }));

function mixforge(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout, stderr: r.stderr };
}

/** `train` arguments for a fastvlm-tiny run at 64²: updates of 4 samples in micro-batches of 2 (or `microBatch`). */
function tinyRun(mixture: string, dir: string, steps: number, microBatch = 2): string[] {
  return [
    ...['train', mixture, '--checkpoint-dir', dir, '--model', 'fastvlm-tiny', '--preset', 'stage2'],
    ...[
      '--resolution',
      '64',
      '--batch-size',
      '4',
      '--micro-batch',
      String(microBatch),
      '--steps',
      String(steps),
    ],
    ...['--max-length', '96'],
  ];
}

test('a 2-update fastvlm-tiny run of the default objective', async () => {
  const dir = join(root, 'run');
  const r = mixforge(...tinyRun(manifest, dir, 2));
  assert.equal(r.code, 0, r.out);
  assert.match(r.stderr, /training fastvlm-tiny \(lm objective, stage2, full model\) at 64²/);
  const metrics = (await readFile(join(dir, 'metrics.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(metrics.length, 2);
  // A fresh tied Qwen2 at N(0, 0.02) predicts nearly uniformly: ln(151,936) ≈ 11.93.
  assert.ok(Math.abs(metrics[0].loss - Math.log(151936)) < 0.5, `first loss ${metrics[0].loss}`);
  assert.ok(metrics[0].tokens > 0);
  const model = join(dir, 'step-00000002', 'model');
  assert.deepEqual((await readdir(model)).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
  assert.equal(JSON.parse(await readFile(join(model, 'config.json'), 'utf8')).model_type, 'llava_qwen2');
  // --resume reads the objective from the checkpoint; extending by one update trains one more.
  const more = mixforge('train', manifest, '--checkpoint-dir', dir, '--resume', '--steps', '3');
  assert.equal(more.code, 0, more.out);
  assert.match(more.stderr, /lm objective.*resuming at update 2/);
  assert.match(more.stdout, /done: 3 updates/);
});

test('a run that cannot fit is refused in one line with the change to make', () => {
  const r = mixforge('train', manifest, '--checkpoint-dir', join(root, 'big'), '--preset', 'stage2');
  assert.equal(r.code, 1, r.out);
  const said = r.stderr.split('\n').filter((l) => l.startsWith('mixforge:'));
  assert.equal(said.length, 1, r.stderr);
  assert.match(
    said[0]!,
    /fastvlm-0\.5b at 1024² with micro-batch 128 does not fit this adapter: .*; use --micro-batch \d+/,
  );
  assert.doesNotMatch(r.stderr, /WebGPU reported|validation/i);
});

test('one image per pass at 64² is refused before any GPU work: the encoder’s BatchNorm needs two values', () => {
  const r = mixforge(...tinyRun(manifest, join(root, 'one-image'), 1, 1));
  assert.equal(r.code, 1, r.out);
  assert.match(
    r.stderr,
    /at 64² FastViTHD's last stage is 1×1: training its BatchNorm needs at least 2 images per pass/,
  );
  assert.doesNotMatch(r.stderr, /^gpu:/m);
});

test('model info fastvlm-0.5b --json gives each part', () => {
  const r = mixforge('model', 'info', 'fastvlm-0.5b', '--json');
  assert.equal(r.code, 0, r.out);
  const info = JSON.parse(r.stdout);
  assert.equal(info.params.lm, 494_032_768);
  assert.equal(info.params.projector, 3_557_120);
  assert.equal(info.params.total, info.params.vision + info.params.projector + info.params.lm);
  assert.equal(info.imageTokens, 256);
});

test('--group-by-modality-length asks for the token sidecar, then trains in that order', async () => {
  const dir = join(root, 'grouped');
  // A private copy of the cached fixture, without any sidecar an earlier run left there.
  const mix = join(root, 'grouped-mixture');
  await cp(dirname(manifest), mix, { recursive: true });
  await rm(join(mix, 'tokens'), { recursive: true, force: true });
  const own = join(mix, 'manifest.json');
  const args = [...tinyRun(own, dir, 1), '--group-by-modality-length'];
  const missing = mixforge(...args);
  assert.equal(missing.code, 1, missing.out);
  assert.match(
    missing.stderr,
    /no token counts at resolution 64 \(run: mixforge tokens .* --resolution 64\)/,
  );
  const tokens = mixforge('tokens', own, '--resolution', '64');
  assert.equal(tokens.code, 0, tokens.out);
  const r = mixforge(...args);
  assert.equal(r.code, 0, r.out);
  const state = JSON.parse(await readFile(join(dir, 'step-00000001', 'trainer.json'), 'utf8'));
  assert.deepEqual(state.loader.grouping, { batchSize: 2, worldSize: 2, resolution: 64 });
});
