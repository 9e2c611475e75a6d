// The GEMM entry point every op uses: validates the call, cuts operands that exceed one storage binding
// (batch by batch, then M rows of A and C, or K rows of a transposed A with accumulation) and hands each
// piece to the kernel the registry picks for this device.
import type { Tensor } from '../tensor.ts';
import { selectGemmKernel } from './registry.ts';
import type { GemmShape } from './spec.ts';

/** Extent in elements that a strided matrix occupies: rows × ld, last row only up to its width. */
function extent(rows: number, cols: number, ld: number): number {
  return rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols;
}

export interface GemmOffsets {
  a?: number;
  b?: number;
  c?: number;
}

export function gemm(s: GemmShape, A: Tensor, B: Tensor, C: Tensor, off: GemmOffsets = {}): void {
  const eng = A.engine;
  if (s.M === 0 || s.N === 0) return;
  const aRows = s.transA ? s.K : s.M;
  const aCols = s.transA ? s.M : s.K;
  const bRows = s.transB ? s.N : s.K;
  const bCols = s.transB ? s.K : s.N;
  const aOff = off.a ?? 0;
  const bOff = off.b ?? 0;
  const cOff = off.c ?? 0;
  const lastA = aOff + (s.batch - 1) * s.strideA + extent(aRows, aCols, s.lda);
  const lastB = bOff + (s.batch - 1) * s.strideB + extent(bRows, bCols, s.ldb);
  const lastC = cOff + (s.batch - 1) * s.strideC + extent(s.M, s.N, s.ldc);
  if (lastA > A.size || lastB > B.size || lastC > C.size) {
    throw new Error(`gemm: operands too small for M=${s.M} N=${s.N} K=${s.K} batch=${s.batch}`);
  }
  if (s.K === 0) throw new Error('gemm: K = 0');
  const maxElems = Math.floor(eng.maxBindingBytes / 4) - eng.storageAlign / 4;
  const fits = (n: number) => n <= maxElems;
  const run = (sh: GemmShape, ao: number, bo: number, co: number) => {
    const ext = (rows: number, cols: number, ld: number, stride: number) =>
      (sh.batch - 1) * stride + extent(rows, cols, ld);
    const aw = A.window(ao, ext(sh.transA ? sh.K : sh.M, sh.transA ? sh.M : sh.K, sh.lda, sh.strideA));
    const bw = B.window(bo, ext(sh.transB ? sh.N : sh.K, sh.transB ? sh.K : sh.N, sh.ldb, sh.strideB));
    const cw = C.window(co, ext(sh.M, sh.N, sh.ldc, sh.strideC));
    selectGemmKernel(eng, sh).encode(eng, sh, aw, bw, cw);
  };
  const total = (sh: GemmShape) => [
    (sh.batch - 1) * sh.strideA + extent(sh.transA ? sh.K : sh.M, sh.transA ? sh.M : sh.K, sh.lda),
    (sh.batch - 1) * sh.strideB + extent(sh.transB ? sh.N : sh.K, sh.transB ? sh.K : sh.N, sh.ldb),
    (sh.batch - 1) * sh.strideC + extent(sh.M, sh.N, sh.ldc),
  ];
  if (total(s).every(fits)) {
    run(s, aOff, bOff, cOff);
    return;
  }
  if (s.batch > 1) {
    for (let b = 0; b < s.batch; b++) {
      gemm({ ...s, batch: 1 }, A, B, C, {
        a: aOff + b * s.strideA,
        b: bOff + b * s.strideB,
        c: cOff + b * s.strideC,
      });
    }
    return;
  }
  const [, bExt] = total(s);
  if (!fits(bExt as number) && !(s.transA && !s.transB)) {
    throw new Error(`gemm: B operand (${bExt} elements) exceeds one storage binding and is not chunked`);
  }
  if (!s.transA) {
    // Rows of A and C together.
    const rowElems = Math.max(s.lda, s.ldc);
    const per = Math.max(1, Math.floor(maxElems / rowElems));
    for (let m = 0; m < s.M; m += per) {
      const M = Math.min(per, s.M - m);
      run({ ...s, M }, aOff + m * s.lda, bOff, cOff + m * s.ldc);
    }
    return;
  }
  // Transposed A is stored K×M: cut K (rows of A and, untransposed, of B) and accumulate into C.
  const rowElems = Math.max(s.lda, s.transB ? 0 : s.ldb);
  const per = Math.max(1, Math.floor(maxElems / rowElems));
  if (!fits(extent(s.M, s.N, s.ldc)))
    throw new Error('gemm: C exceeds one storage binding with transposed A');
  for (let k = 0; k < s.K; k += per) {
    const K = Math.min(per, s.K - k);
    run({ ...s, K, beta: k === 0 ? s.beta : 1 }, aOff + k * s.lda, bOff + (s.transB ? k : k * s.ldb), cOff);
  }
}
