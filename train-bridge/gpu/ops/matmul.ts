// matmul(a, b) = α·op(a)·op(b), plain [M,K]·[K,N] or batched [B,M,K]·[B,K,N]; an unbatched b is shared
// by every batch (then the batch folds into M and b's gradient is one GEMM over all rows).
import { gemm } from '../gemm/gemm.ts';
import type { GemmShape } from '../gemm/spec.ts';
import { shapeString, type Tensor } from '../tensor.ts';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
}

interface Dims {
  batch: number;
  M: number;
  K: number;
  N: number;
  bShared: boolean;
}

function dims(a: Tensor, b: Tensor, o: MatmulOptions): Dims {
  const bad = () =>
    new Error(
      `matmul: cannot multiply ${shapeString(a.shape)}${o.transA ? 'ᵀ' : ''} by ${shapeString(b.shape)}${o.transB ? 'ᵀ' : ''}`,
    );
  if (a.rank < 2 || a.rank > 3 || b.rank < 2 || b.rank > 3) throw bad();
  const batch = a.rank === 3 ? (a.shape[0] as number) : 1;
  if (b.rank === 3 && (a.rank !== 3 || b.shape[0] !== batch)) throw bad();
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const M = o.transA ? ac : ar;
  const K = o.transA ? ar : ac;
  const Kb = o.transB ? bc : br;
  const N = o.transB ? br : bc;
  if (K !== Kb) throw bad();
  const bShared = a.rank === 3 && b.rank === 2;
  if (bShared && o.transA) throw new Error('matmul: a shared (unbatched) b needs an untransposed a');
  return { batch, M, K, N, bShared };
}

/** Raw C = α·op(a)·op(b) into a new tensor, or added into `into` (same size), no tape. */
export function matmulRaw(a: Tensor, b: Tensor, o: MatmulOptions = {}, into?: Tensor): Tensor {
  const d = dims(a, b, o);
  const eng = a.engine;
  const out = into ?? eng.empty(a.rank === 3 ? [d.batch, d.M, d.N] : [d.M, d.N]);
  const transA = !!o.transA;
  const transB = !!o.transB;
  // A shared b lets the whole batch run as one tall GEMM.
  const M = d.bShared ? d.batch * d.M : d.M;
  const batch = d.bShared ? 1 : d.batch;
  const s: GemmShape = {
    M,
    N: d.N,
    K: d.K,
    batch,
    transA,
    transB,
    lda: transA ? d.M : d.K,
    ldb: transB ? d.K : d.N,
    ldc: d.N,
    strideA: d.M * d.K,
    strideB: b.rank === 3 ? d.K * d.N : 0,
    strideC: d.M * d.N,
    alpha: o.alpha ?? 1,
    beta: into ? 1 : 0,
  };
  gemm(s, a, b, out);
  return out;
}

// ---- forward
export function matmul(a: Tensor, b: Tensor, o: MatmulOptions = {}): Tensor {
  const y = matmulRaw(a, b, o);
  const d = dims(a, b, o);
  a.engine.record('matmul', [a, b], y, [a, b], (dy, needs, into) => matmulGrad(a, b, dy, o, d, needs, into));
  return y;
}

// ---- gradient (C = α·op(A)·op(B))
function matmulGrad(
  a: Tensor,
  b: Tensor,
  dy: Tensor,
  o: MatmulOptions,
  d: Dims,
  needs: boolean[],
  into: readonly (Tensor | undefined)[],
): (Tensor | undefined)[] {
  const alpha = o.alpha ?? 1;
  const tA = !!o.transA;
  const tB = !!o.transB;
  let da: Tensor | undefined;
  let db: Tensor | undefined;
  if (needs[0]) {
    // op(A) = M×K: dop(A) = dC·op(B)ᵀ; A stored transposed gets the transpose of that.
    da = tA
      ? matmulRaw(b, dy, { transA: tB, transB: true, alpha }, into[0])
      : matmulRaw(dy, b, { transB: !tB, alpha }, into[0]);
  }
  if (needs[1]) {
    if (d.bShared) {
      // Fold the batch into the reduction: b's gradient sums over every row of every batch.
      const rows = d.batch * d.M;
      const g = a.engine.empty(b.shape);
      const s: GemmShape = tB
        ? {
            M: d.N,
            N: d.K,
            K: rows,
            batch: 1,
            transA: true,
            transB: false,
            lda: d.N,
            ldb: d.K,
            ldc: d.K,
            strideA: 0,
            strideB: 0,
            strideC: 0,
            alpha,
            beta: 0,
          }
        : {
            M: d.K,
            N: d.N,
            K: rows,
            batch: 1,
            transA: true,
            transB: false,
            lda: d.K,
            ldb: d.N,
            ldc: d.N,
            strideA: 0,
            strideB: 0,
            strideC: 0,
            alpha,
            beta: 0,
          };
      if (tB) gemm(s, dy, a, g);
      else gemm(s, a, dy, g);
      db = g;
    } else {
      db = tB
        ? matmulRaw(dy, a, { transA: true, transB: tA, alpha }, into[1])
        : matmulRaw(a, dy, { transA: !tA, alpha }, into[1]);
    }
  }
  return [da, db];
}
