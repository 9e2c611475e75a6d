// Runs every op forward and backward on random shapes (sizes off every tile multiple) on the GPU and
// compares with an independent reference: TensorFlow.js's CPU backend (values and gradients through
// tf.grads), or plain CPU code for the optimiser. A second pass on an engine whose storage bindings are
// limited to 128 KiB drives the chunked paths of large tensors. The cases live in selftest/, one file per
// op family.
import { Engine, type EngineOptions } from './engine.ts';
import { attentionCases } from './selftest/attention.ts';
import { causalAttentionCases } from './selftest/causal-attention.ts';
import { contrastiveCases } from './selftest/contrastive.ts';
import { convolutionCases } from './selftest/convolution.ts';
import { crossEntropyCases } from './selftest/cross-entropy.ts';
import { decoderCases } from './selftest/decoder.ts';
import { elementwiseCases } from './selftest/elementwise.ts';
import {
  type Case,
  runCase,
  runForwardOnly,
  type SelftestReport,
  type SelftestResult,
  type Tf,
} from './selftest/harness.ts';
import { gemmParity, matmulCases } from './selftest/matmul.ts';
import { normalisationCases } from './selftest/normalisation.ts';
import { optimiserCases } from './selftest/optimiser.ts';
import { reductionCases } from './selftest/reductions.ts';

export type { SelftestReport, SelftestResult } from './selftest/harness.ts';

/** The op families, in the order the selftest runs them (a case's seed is its place in this order). */
const FAMILIES = {
  elementwise: elementwiseCases,
  matmul: matmulCases,
  convolution: convolutionCases,
  normalisation: normalisationCases,
  reductions: reductionCases,
  attention: attentionCases,
  contrastive: contrastiveCases,
  decoder: decoderCases,
  'causal-attention': causalAttentionCases,
  'cross-entropy': crossEntropyCases,
} as const;

/** A family of cases, or the optimiser steps, or the parity of every GEMM kernel against the naive one. */
export type SelftestFamily = keyof typeof FAMILIES | 'optimiser' | 'gemm-parity' | 'gemm-parity-gpu-only';

export const SELFTEST_FAMILIES: readonly SelftestFamily[] = [
  ...(Object.keys(FAMILIES) as SelftestFamily[]),
  'optimiser',
  'gemm-parity',
  'gemm-parity-gpu-only',
];

function cases(): Array<Case & { family: SelftestFamily }> {
  return Object.entries(FAMILIES).flatMap(([family, of]) =>
    of().map((c) => ({ ...c, family: family as SelftestFamily })),
  );
}

async function loadTf(): Promise<Tf> {
  // The full package: its Node bundle registers the CPU backend and every gradient function.
  const tf = await import('@tensorflow/tfjs');
  // tfjs prints a "use tfjs-node" banner on Node unless told it is not on Node; we want the pure JS CPU
  // backend as the independent reference anyway.
  tf.env().set('IS_NODE', false);
  await tf.setBackend('cpu');
  return tf;
}

export interface SelftestOptions extends EngineOptions {
  /** Only cases whose op or name contains this substring. */
  filter?: string;
  /** Only these families (the test suite runs the selftest in parts, side by side); seeds stay those of a full run. */
  families?: readonly SelftestFamily[];
  /** Every GEMM kernel on every parity shape, also GPU-only kernels on a CPU adapter (see gemmParity). */
  fullGemmParity?: boolean;
  seed?: number;
  onResult?: (r: SelftestResult) => void;
}

export async function runSelftest(o: SelftestOptions = {}): Promise<SelftestReport> {
  const t0 = performance.now();
  const tf = await loadTf();
  const all = cases().filter((c) => !o.filter || `${c.op} ${c.name}`.includes(o.filter));
  const runs = (family: SelftestFamily) => !o.families || o.families.includes(family);
  const results: SelftestResult[] = [];
  const emit = (r: SelftestResult) => {
    results.push(r);
    o.onResult?.(r);
  };
  const eng = await Engine.create(o);
  const adapter = eng.ctx.adapter.description || eng.ctx.adapter.device;
  try {
    for (const [i, c] of all.entries()) {
      if (!runs(c.family)) continue;
      const seed = (o.seed ?? 1) * 1000 + i;
      emit(await (c.forwardOnly ? runForwardOnly(eng, tf, c, seed) : runCase(eng, tf, c, seed)));
    }
    if (runs('optimiser') && (!o.filter || 'adamw clipGradNorm'.includes(o.filter)))
      for (const r of await optimiserCases(eng)) emit(r);
    // The kernels a CPU adapter picks, then the GPU-only ones (all of them when both families run).
    for (const [family, which] of [
      ['gemm-parity', 'others'],
      ['gemm-parity-gpu-only', 'gpu-only'],
    ] as const)
      if (runs(family) && (!o.filter || o.filter.startsWith('gemm')))
        for (const r of await gemmParity(eng, tf, o.fullGemmParity, which)) emit(r);
  } finally {
    eng.destroy();
  }
  // The chunked paths: the same cases on an engine that pretends bindings stop at 128 KiB.
  const small = await Engine.create({ ...o, maxBindingBytes: 128 * 1024 });
  try {
    for (const [i, c] of all.entries()) {
      if (!c.chunked || !runs(c.family)) continue;
      const r = await runCase(small, tf, c, (o.seed ?? 1) * 1000 + i);
      emit({ ...r, case: `${r.case} @128KiB bindings` });
    }
  } finally {
    small.destroy();
  }
  return { adapter, results, pass: results.every((r) => r.pass), seconds: (performance.now() - t0) / 1000 };
}
