// The op selftest on whatever adapter the machine has (lavapipe in CI), in three parts that run side by side (each
// file of the suite is one process): together every family of SELFTEST_FAMILIES. No adapter is a failure, not a
// skip: the WebGPU engine is part of the product.
import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runSelftest, SELFTEST_FAMILIES, type SelftestFamily } from '../../../train-bridge/gpu/selftest.ts';

interface Part {
  families: readonly SelftestFamily[];
  /** The ops the part must report, including the chunked (large tensor) paths where named. */
  ops: readonly string[];
  minResults: number;
}

export const SELFTEST_PARTS = {
  // The GEMM kernels compile slowly on lavapipe (about 120 CPU-s with a cold shader cache, 300 s of wall on a
  // loaded 2-core box): two files, the kernels a CPU adapter picks and the GPU-only ones.
  'gemm-parity': {
    families: ['gemm-parity'],
    ops: ['gemm:rowb8x64', 'gemm:tiled64x64', 'gemm:naive'],
    minResults: 3,
  },
  'gemm-parity-gpu-only': {
    families: ['gemm-parity-gpu-only'],
    ops: ['gemm:blocked128', 'gemm:blocked128v4'],
    minResults: 2,
  },
  'vision-ops': {
    families: ['elementwise', 'matmul', 'convolution', 'normalisation', 'reductions'],
    ops: [
      ...[
        'add',
        'addScaled',
        'addAll',
        'sub',
        'mul',
        'scale',
        'gelu',
        'biasGelu',
        'relu',
        'sigmoid',
        'exp',
        'permute',
        'reshape',
      ],
      ...[
        'matmul',
        'linear',
        'conv2d',
        'avgPool2d',
        'batchNorm',
        'layerNormChannel',
        'meanSpatial',
        'sum',
        'mean',
      ],
    ],
    minResults: 25,
  },
  'attention-lm': {
    families: ['attention', 'contrastive', 'decoder', 'causal-attention', 'cross-entropy', 'optimiser'],
    ops: [
      ...['softmax', 'attention', 'sigmoidContrastiveLoss', 'embeddingBag', 'adamw', 'clipGradNorm'],
      ...[
        'embedding',
        'rmsNorm',
        'rope',
        'causalAttention',
        'decodeAttention',
        'lmHeadCrossEntropy',
        'siluMul',
      ],
    ],
    minResults: 15,
  },
} satisfies Record<string, Part>;

/**
 * On lavapipe the selftest's time is compiling kernels (230 CPU-s with an empty shader cache, 10 warm) that then
 * run on tiny shapes, so its parts ask LLVM to skip optimisation (GALLIVM_PERF=nopt: about a third less CPU cold).
 * Those unoptimised kernels go to a shader cache of their own, so no other process (a benchmark, the training
 * tests) picks them up. Read when the engine creates the Vulkan instance, so set before the first engine.
 */
function unoptimisedLavapipe(): void {
  process.env.GALLIVM_PERF = 'nopt';
  const base =
    process.env.MESA_SHADER_CACHE_DIR ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'mesa');
  process.env.MESA_SHADER_CACHE_DIR = join(base, 'mixforge-selftest-nopt');
}

export function selftestPartTest(name: keyof typeof SELFTEST_PARTS): void {
  const part: Part = SELFTEST_PARTS[name];
  test(`${name} ops forward and backward match the TF.js CPU reference`, async () => {
    unoptimisedLavapipe();
    // GPU-only GEMM kernels get a few parity shapes on lavapipe unless the slow run asks for all (gemmParity).
    const report = await runSelftest({
      families: part.families,
      fullGemmParity: process.env.MIXFORGE_SLOW_TESTS === '1',
    });
    const failed = report.results.filter((r) => !r.pass);
    assert.deepEqual(
      failed.map((r) => `${r.op} ${r.case}: rel ${r.maxRel} (${r.worst}) ${r.error ?? ''}`),
      [],
    );
    const ops = new Set(report.results.map((r) => r.op));
    for (const op of part.ops) assert.ok(ops.has(op), `selftest covers ${op}`);
    if (name === 'vision-ops')
      assert.ok(report.results.some((r) => r.case.includes('@128KiB bindings') && r.op === 'conv2d'));
    assert.ok(report.results.length >= part.minResults, `${report.results.length} results`);
  });
}

/** The parts together run every family once. */
export function selftestPartsCoverAll(): void {
  test('the selftest parts together run every family once', () => {
    const families = Object.values(SELFTEST_PARTS).flatMap((p) => p.families);
    assert.deepEqual([...families].sort(), [...SELFTEST_FAMILIES].sort());
  });
}
