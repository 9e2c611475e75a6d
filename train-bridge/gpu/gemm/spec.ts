// What a GEMM call is, independent of the kernel that runs it: C[b] = α·op(A[b])·op(B[b]) + β·C[b] over
// strided, possibly transposed operands. Kernels implement GemmKernel and are chosen per device by the
// registry, so a faster kernel (e.g. f16 subgroup-matrix) can be swapped in behind a parity test.
import type { Engine } from '../engine.ts';
import type { KernelDef, StorageBinding } from '../kernel.ts';
import type { BufferRange } from '../pipeline-cache.ts';

export interface GemmShape {
  M: number;
  N: number;
  K: number;
  batch: number;
  /** A is stored K×M (row-major) instead of M×K. */
  transA: boolean;
  /** B is stored N×K instead of K×N. */
  transB: boolean;
  lda: number;
  ldb: number;
  ldc: number;
  /** Element strides between batch matrices (0 broadcasts one matrix over the batch). */
  strideA: number;
  strideB: number;
  strideC: number;
  alpha: number;
  /** 0 overwrites C (never reads it, so uninitialised memory is fine); 1 accumulates. */
  beta: number;
}

/** A bound operand: the binding plus where its first element sits inside it. */
export interface GemmOperand {
  range: BufferRange;
  base: number;
}

export interface GemmKernel {
  name: string;
  /** Whether the registry picks this kernel for this shape on this engine (device kind, features, limits). */
  supports(eng: Engine, s: GemmShape): boolean;
  /**
   * Whether it can run on this engine at all when forced (parity tests, benchmarks); default true. A kernel
   * tuned for GPUs still runs, slowly, on a CPU adapter; one that needs a missing feature does not.
   */
  runsOn?(eng: Engine): boolean;
  /**
   * Never picked on a CPU adapter (tuned for GPUs). There its parity is checked on a few shapes unless the full
   * check is asked for: lavapipe spends ~15 CPU-s compiling each of its pipelines.
   */
  gpuOnly?: boolean;
  encode(eng: Engine, s: GemmShape, a: GemmOperand, b: GemmOperand, c: GemmOperand): void;
}

export function gemmFlops(s: Pick<GemmShape, 'M' | 'N' | 'K' | 'batch'>): number {
  return 2 * s.M * s.N * s.K * s.batch;
}

/** The uniform values every GEMM kernel receives. */
export function gemmUniforms(
  s: GemmShape,
  a: GemmOperand,
  b: GemmOperand,
  c: GemmOperand,
): Record<string, number> {
  return {
    M: s.M,
    N: s.N,
    K: s.K,
    lda: s.lda,
    ldb: s.ldb,
    ldc: s.ldc,
    strideA: s.strideA,
    strideB: s.strideB,
    strideC: s.strideC,
    aBase: a.base,
    bBase: b.base,
    cBase: c.base,
    alpha: s.alpha,
    beta: s.beta,
  };
}

export const GEMM_UNIFORMS = [
  'M',
  'N',
  'K',
  'lda',
  'ldb',
  'ldc',
  'strideA',
  'strideB',
  'strideC',
  'aBase',
  'bBase',
  'cBase',
  'alpha:f32',
  'beta:f32',
];

/** Uniforms and bindings of the split-K kernels (tiled, row-broadcast): K slices write partial tiles to `part`. */
export const SPLIT_K_UNIFORMS = [...GEMM_UNIFORMS, 'splits', 'kPerSplit', 'splitStride'];
export const SPLIT_K_STORAGE: StorageBinding[] = [
  { name: 'A', access: 'read' },
  { name: 'B', access: 'read' },
  { name: 'C', access: 'read_write' },
  { name: 'part', access: 'read_write' },
];

/**
 * A kernel builder memoised per transpose pair: `build` gets the pair, the WGSL storage indices of op(A)[m, k] and
 * op(B)[k, n], and the name suffix, and runs once per pair.
 */
export function perTransposePair(
  build: (p: { transA: boolean; transB: boolean; aIdx: string; bIdx: string; suffix: string }) => KernelDef,
): (transA: boolean, transB: boolean) => KernelDef {
  const made = new Map<string, KernelDef>();
  return (transA, transB) => {
    const suffix = transposeSuffix(transA, transB);
    let k = made.get(suffix);
    if (!k) {
      k = build({ transA, transB, ...operandIndices(transA, transB), suffix });
      made.set(suffix, k);
    }
    return k;
  };
}

/** WGSL storage indices of element (m, k) of op(A) and (k, n) of op(B), for transposed or plain operands. */
export function operandIndices(transA: boolean, transB: boolean): { aIdx: string; bIdx: string } {
  return {
    aIdx: transA ? 'k * P.lda + m' : 'm * P.lda + k',
    bIdx: transB ? 'n * P.ldb + k' : 'k * P.ldb + n',
  };
}

/** `nn`, `nt`, `tn` or `tt`: the kernel-name suffix of a transpose pair. */
export const transposeSuffix = (transA: boolean, transB: boolean) =>
  `${transA ? 't' : 'n'}${transB ? 't' : 'n'}`;
