// Runs the full op selftest on whatever adapter the machine has (lavapipe in CI). No adapter is a failure,
// not a skip: the WebGPU engine is part of the product.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSelftest } from '../../../train-bridge/gpu/selftest.ts';

test('every op forward and backward matches the TF.js CPU reference', async () => {
  // GPU-only GEMM kernels get a few parity shapes on lavapipe unless the slow run asks for all (gemmParity).
  const report = await runSelftest({ fullGemmParity: process.env.MIXFORGE_SLOW_TESTS === '1' });
  const failed = report.results.filter((r) => !r.pass);
  assert.deepEqual(
    failed.map((r) => `${r.op} ${r.case}: rel ${r.maxRel} (${r.worst}) ${r.error ?? ''}`),
    [],
  );
  // Every op family of the FastViTHD engine is covered, including the chunked (large tensor) paths.
  const ops = new Set(report.results.map((r) => r.op));
  for (const op of [
    'add',
    'sub',
    'mul',
    'scale',
    'gelu',
    'relu',
    'sigmoid',
    'exp',
    'matmul',
    'linear',
    'conv2d',
    'batchNorm',
    'layerNormChannel',
    'avgPool2d',
    'meanSpatial',
    'sum',
    'mean',
    'softmax',
    'attention',
    'permute',
    'reshape',
    'sigmoidContrastiveLoss',
    'embeddingBag',
    'adamw',
    'clipGradNorm',
    'embedding',
    'rmsNorm',
    'rope',
    'causalAttention',
    'decodeAttention',
    'lmHeadCrossEntropy',
    'siluMul',
    'gemm:rowb8x64',
    'gemm:blocked128',
    'gemm:blocked128v4',
    'gemm:tiled64x64',
    'gemm:naive',
  ]) {
    assert.ok(ops.has(op), `selftest covers ${op}`);
  }
  assert.ok(report.results.some((r) => r.case.includes('@128KiB bindings') && r.op === 'conv2d'));
  assert.ok(report.results.length >= 50);
});
