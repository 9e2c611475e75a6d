// Selftest cases of matmul (every transpose, batched, shared b, split-K) and linear, and the parity of every
// registered GEMM kernel against the naive one.
import type * as TF from '@tensorflow/tfjs';
import type { Engine } from '../engine.ts';
import { forceGemmKernel, runnableGemmKernels } from '../gemm/registry.ts';
import * as ops from '../ops/index.ts';
import type { Tensor } from '../tensor.ts';
import { type Case, runForwardOnly, type SelftestResult, type Tf } from './harness.ts';

export function matmulCases(): Case[] {
  return [
    ...[false, true].flatMap((tA) =>
      [false, true].map(
        (tB): Case => ({
          op: 'matmul',
          name: `67×33·33×70 ${tA ? 'T' : 'N'}${tB ? 'T' : 'N'}`,
          inputs: [
            { shape: tA ? [33, 67] : [67, 33], grad: true },
            { shape: tB ? [70, 33] : [33, 70], grad: true },
          ],
          gpu: ([a, b]) => ops.matmul(a as Tensor, b as Tensor, { transA: tA, transB: tB, alpha: 0.75 }),
          ref: (tf, [a, b]) => tf.mul(tf.matMul(a as TF.Tensor2D, b as TF.Tensor2D, tA, tB), 0.75),
        }),
      ),
    ),
    {
      // a·b + (1.5·a)·(1.5·b): both inputs' second gradients are added into the first by the GEMM (β = 1).
      op: 'matmul',
      name: 'a and b used twice [17,29]·[29,13]',
      inputs: [
        { shape: [17, 29], grad: true },
        { shape: [29, 13], grad: true },
      ],
      gpu: ([a, b]) =>
        ops.add(
          ops.matmul(a as Tensor, b as Tensor),
          ops.matmul(ops.scale(a as Tensor, 1.5), ops.scale(b as Tensor, 1.5)),
        ),
      ref: (tf, [a, b]) =>
        tf.add(
          tf.matMul(a as TF.Tensor2D, b as TF.Tensor2D),
          tf.matMul(tf.mul(a as TF.Tensor2D, 1.5), tf.mul(b as TF.Tensor2D, 1.5)),
        ),
    },
    {
      op: 'matmul',
      name: 'batched [3,17,29]·[3,29,13]',
      inputs: [
        { shape: [3, 17, 29], grad: true },
        { shape: [3, 29, 13], grad: true },
      ],
      gpu: ([a, b]) => ops.matmul(a as Tensor, b as Tensor),
      ref: (tf, [a, b]) => tf.matMul(a as TF.Tensor3D, b as TF.Tensor3D),
    },
    {
      op: 'matmul',
      name: 'shared b [2,37,19]·[19,23]ᵀ',
      inputs: [
        { shape: [2, 37, 19], grad: true },
        { shape: [23, 19], grad: true },
      ],
      gpu: ([a, b]) => ops.matmul(a as Tensor, b as Tensor, { transB: true }),
      ref: (tf, [a, b]) =>
        tf.reshape(
          tf.matMul(tf.reshape(a as TF.Tensor, [74, 19]), b as TF.Tensor2D, false, true),
          [2, 37, 23],
        ),
    },
    {
      op: 'matmul',
      name: 'split-K 9×2500·2500×13',
      inputs: [
        { shape: [2500, 9], grad: true },
        { shape: [2500, 13], grad: true },
      ],
      gpu: ([a, b]) => ops.matmul(a as Tensor, b as Tensor, { transA: true }),
      ref: (tf, [a, b]) => tf.matMul(a as TF.Tensor2D, b as TF.Tensor2D, true, false),
      tol: 1e-3,
    },
    {
      op: 'linear',
      name: 'NHWC 1×1 [2,41,23,24]→40 (chunked rows)',
      inputs: [
        { shape: [2, 41, 23, 24], grad: true },
        { shape: [24, 40], grad: true, init: 'small' },
        { shape: [40], grad: true },
      ],
      gpu: ([x, w, b]) => ops.linear(x as Tensor, w as Tensor, b as Tensor),
      ref: (tf, [x, w, b]) =>
        tf.reshape(
          tf.add(tf.matMul(tf.reshape(x as TF.Tensor, [-1, 24]), w as TF.Tensor2D), b as TF.Tensor),
          [2, 41, 23, 40],
        ),
      chunked: true,
    },
  ];
}

/**
 * Every registered GEMM kernel against the naive one on awkward shapes (the swap-in parity check). A GPU-only
 * kernel on a CPU adapter runs two shapes each unless `full` (the three of them still cover every transpose pair,
 * vec4 and scalar loads, batches and split-K): its pipelines cost lavapipe ~15 CPU-s each to compile, ~290 CPU-s
 * for the whole set on a fresh machine, for kernels that adapter never picks. `bench/device-check.sh` and
 * `MIXFORGE_SLOW_TESTS=1` run them all. `which` picks the GPU-only kernels or the others (two selftest families, so
 * the suite can compile them in two processes side by side).
 */
export async function gemmParity(
  eng: Engine,
  tf: Tf,
  full = false,
  which: 'all' | 'gpu-only' | 'others' = 'all',
): Promise<SelftestResult[]> {
  const out: SelftestResult[] = [];
  // Shapes that are not multiples of any tile, every transpose variant, a narrow M (one row tile) and
  // a long K with few output tiles (split-K on every device).
  const shapes: { name: string; a: number[]; b: number[]; transA?: boolean; transB?: boolean }[] = [
    { name: 'batched 2×61×77·77×45', a: [2, 61, 77], b: [2, 77, 45] },
    { name: 'Aᵀ 70×19ᵀ·70×37', a: [70, 19], b: [70, 37], transA: true },
    { name: 'Bᵀ 13×29·67×29ᵀ', a: [13, 29], b: [67, 29], transB: true },
    { name: 'AᵀBᵀ 33×21ᵀ·10×33ᵀ', a: [33, 21], b: [10, 33], transA: true, transB: true },
    { name: 'narrow M 3×130·130×150', a: [3, 130], b: [130, 150] },
    // N ≤ 32: the CPU-adapter GEMM's 8-lane narrow-column tiles (here 32 columns, 5 clamped).
    { name: 'narrow N 300×40·40×27', a: [300, 40], b: [40, 27] },
    { name: 'split-K 5×1100·1100×7', a: [5, 1100], b: [1100, 7] },
    { name: 'split-K Aᵀ 1030×9ᵀ·1030×70', a: [1030, 9], b: [1030, 70], transA: true },
    // Multiples of 4 (not of any tile): the vec4-load paths, for every transpose pair, batched, and a
    // 128-tile interior with a ragged edge.
    { name: 'vec4 batched 2×132·136·136×140', a: [2, 132, 136], b: [2, 136, 140] },
    { name: 'vec4 Aᵀ 68×132ᵀ·68×136', a: [68, 132], b: [68, 136], transA: true },
    { name: 'vec4 Bᵀ 132×68·140×68ᵀ', a: [132, 68], b: [140, 68], transB: true },
    { name: 'vec4 AᵀBᵀ 36×132ᵀ·136×36ᵀ', a: [36, 132], b: [136, 36], transA: true, transB: true },
    { name: 'vec4 split-K 8×1200·1200×12', a: [8, 1200], b: [1200, 12] },
  ];
  const smoke: Record<string, string[]> = {
    blocked128: ['AᵀBᵀ 33×21ᵀ·10×33ᵀ', 'split-K Aᵀ 1030×9ᵀ·1030×70'],
    blocked128v4: ['vec4 batched 2×132·136·136×140', 'vec4 Bᵀ 132×68·140×68ᵀ'],
    blocked128v4sg: ['vec4 AᵀBᵀ 36×132ᵀ·136×36ᵀ', 'Bᵀ 13×29·67×29ᵀ'],
  };
  for (const k of runnableGemmKernels(eng)) {
    if ((which === 'gpu-only' && !k.gpuOnly) || (which === 'others' && k.gpuOnly)) continue;
    forceGemmKernel(eng, k.name);
    const few = !full && k.gpuOnly && eng.ctx.adapter.isCpu ? smoke[k.name] : undefined;
    const picked = few ? shapes.filter((sh) => few.includes(sh.name)) : shapes;
    if (few && picked.length !== few.length)
      throw new Error(`gemmParity: no smoke shapes named for ${k.name}`);
    for (const sh of picked) {
      const o = { transA: !!sh.transA, transB: !!sh.transB };
      const c: Case = {
        op: `gemm:${k.name}`,
        name: sh.name,
        inputs: [{ shape: sh.a }, { shape: sh.b }],
        gpu: ([a, b]) => ops.matmul(a as Tensor, b as Tensor, o),
        ref: (t, [a, b]) => t.matMul(a as TF.Tensor2D, b as TF.Tensor2D, o.transA, o.transB),
      };
      // No input needs a gradient here: compare the forward only.
      out.push(await runForwardOnly(eng, tf, c, 5));
    }
  }
  forceGemmKernel(eng, undefined);
  return out;
}
