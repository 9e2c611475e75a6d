// Pure parts of training: the HF cosine-with-warmup schedule, stage presets and overrides, the hashed caption
// tokenizer, caption extraction from samples, and the loss-curve plot.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Turn } from '../../../core/schema.ts';
import { captionOf } from '../../../train-bridge/train/pairs.ts';
import { lossCurveSvg, movingAverage } from '../../../train-bridge/train/plot.ts';
import {
  checkResolution,
  extendRun,
  resolveRunConfig,
  STAGE_PRESETS,
} from '../../../train-bridge/train/presets.ts';
import { cosineWithWarmup, warmupSteps } from '../../../train-bridge/train/schedule.ts';
import { captionWords, tokenizeCaption } from '../../../train-bridge/train/text-tower.ts';

test('cosine schedule with warmup follows get_cosine_schedule_with_warmup', () => {
  // 1000 updates, ratio 0.03 → 30 warmup updates: lr(k) = peak·k/30, then half a cosine to 0.
  assert.equal(warmupSteps(1000, 0.03), 30);
  assert.equal(warmupSteps(10, 0.03), 1);
  assert.equal(cosineWithWarmup(0, 1000, 1e-3, 0.03), 0);
  assert.equal(cosineWithWarmup(15, 1000, 1e-3, 0.03), 5e-4);
  assert.equal(cosineWithWarmup(30, 1000, 1e-3, 0.03), 1e-3);
  assert.ok(Math.abs(cosineWithWarmup(515, 1000, 1e-3, 0.03) - 5e-4) < 1e-15);
  assert.ok(cosineWithWarmup(999, 1000, 1e-3, 0.03) < 1e-7);
  assert.equal(cosineWithWarmup(5, 10, 2, 0), 1 + Math.cos(Math.PI / 2));
  assert.throws(() => cosineWithWarmup(-1, 10, 1, 0), /non-negative/);
  assert.throws(() => warmupSteps(10, 1), /\[0, 1\)/);
});

test('presets carry the paper numbers; overrides and accumulation are validated', () => {
  assert.deepEqual(
    Object.entries(STAGE_PRESETS).map(([k, p]) => [k, p.trainEncoder, p.lr, p.batchSize, p.warmupRatio]),
    [
      ['stage1', false, 1e-3, 256, 0.03],
      ['stage1.5', true, 2e-5, 128, 0.03],
      ['stage2', true, 2e-5, 128, 0.03],
    ],
  );
  const c = resolveRunConfig('fastvithd', 'stage1', { microBatch: 16 }, (b) => Math.floor(1000 / b));
  assert.equal(c.resolution, 1024);
  assert.equal(c.batchSize, 256);
  assert.equal(c.microBatch, 16);
  assert.equal(c.steps, 3);
  assert.equal(c.heads?.projectorDim, 896);
  const t = resolveRunConfig(
    'fastvithd-tiny',
    'stage2',
    { batchSize: 6, resolution: 192, steps: 9 },
    () => 1,
  );
  assert.deepEqual(
    [t.batchSize, t.microBatch, t.resolution, t.steps, t.lr, t.trainEncoder],
    [6, 6, 192, 9, 2e-5, true],
  );
  assert.throws(
    () => resolveRunConfig('fastvithd', 'stage3', {}, () => 1),
    /--preset.*unknown preset "stage3"/,
  );
  assert.throws(() => resolveRunConfig('vit', 'stage1', {}, () => 1), /--model.*unknown model "vit"/);
  assert.throws(
    () => resolveRunConfig('fastvithd', 'stage1', { microBatch: 24 }, () => 1),
    /--micro-batch.*does not divide 256|24 does not divide/,
  );
  assert.throws(
    () => resolveRunConfig('fastvithd', 'stage1', { resolution: 1000 }, () => 1),
    /--resolution.*multiple of 64/,
  );
});

test('checkResolution: positive multiples of 64 only; extendRun lengthens a run, never shortens it', () => {
  assert.equal(checkResolution('192'), 192);
  assert.equal(checkResolution(1024), 1024);
  assert.throws(() => checkResolution('100'), /--resolution.*100 is not a multiple of 64/);
  assert.throws(() => checkResolution('0'), /--resolution.*expected a positive integer, got "0"/);
  assert.throws(() => checkResolution('64.5'), /positive integer, got "64.5"/);
  assert.throws(() => checkResolution('x'), /positive integer, got "x"/);
  const c = resolveRunConfig('fastvithd-tiny', 'stage1.5', { steps: 10 }, () => 1);
  assert.equal(extendRun(c, 4, undefined), c);
  assert.equal(extendRun(c, 4, 10), c);
  assert.deepEqual(extendRun(c, 4, 30), { ...c, steps: 30 });
  assert.throws(
    () => extendRun(c, 4, 8),
    /--steps.*8 is shorter than the checkpoint's run of 10 updates \(4 done\)/,
  );
});

test('hashed tokenizer: words and word pairs, deterministic, padded and truncated', () => {
  const cfg = { buckets: 1000, embedDim: 8, maxTokens: 6 };
  assert.deepEqual(captionWords('A red, RED square—über 2 Blöcke!'), [
    'a',
    'red',
    'red',
    'square',
    'über',
    '2',
    'blöcke',
  ]);
  const ids = tokenizeCaption('a red square', cfg);
  assert.equal(ids.length, 6);
  // a, "a red", red, "red square", square, then padding
  assert.deepEqual([...ids.slice(5)], [-1]);
  assert.ok([...ids.slice(0, 5)].every((i) => i >= 0 && i < 1000));
  assert.equal(ids[2], tokenizeCaption('red', cfg)[0], 'a word maps to one bucket wherever it stands');
  assert.deepEqual(tokenizeCaption('a red square', cfg), ids);
  assert.notDeepEqual([...tokenizeCaption('a square red', cfg)], [...ids], 'word pairs make order count');
  assert.equal(tokenizeCaption('one two three four five six seven', cfg).filter((i) => i >= 0).length, 6);
  assert.deepEqual([...tokenizeCaption('', cfg)], [-1, -1, -1, -1, -1, -1]);
});

test('captions are the answer turns of samples that have an image', () => {
  const image = { bytes: new Uint8Array(1), width: 1, height: 1, format: 'png' };
  const turns: Turn[] = [
    { from: 'human', value: '<image>\nDescribe.' },
    { from: 'gpt', value: 'Two blocks.' },
    { from: 'human', value: 'Colours?' },
    { from: 'gpt', value: ' Teal and amber. ' },
  ];
  assert.equal(captionOf({ images: [image], conversations: turns }), 'Two blocks. Teal and amber.');
  assert.equal(captionOf({ images: [], conversations: turns }), undefined);
  assert.equal(captionOf({ images: [image], conversations: [{ from: 'gpt', value: '<image>' }] }), undefined);
});

test('loss plot: moving average and an SVG with both curves', () => {
  assert.deepEqual(movingAverage([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5]);
  const svg = lossCurveSvg(
    Array.from({ length: 40 }, (_, i) => ({ step: i + 1, loss: 10 / (i + 1) })),
    'run <1>',
  );
  assert.match(svg, /^<svg /);
  assert.equal(svg.match(/<path /g)?.length, 2);
  assert.match(svg, /run &#60;1&#62;/);
});
