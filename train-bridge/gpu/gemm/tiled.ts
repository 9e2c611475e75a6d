// The default GEMM kernel: 64×64 output tiles per 16×16 workgroup, each thread a 4×4 register block
// held as vec4 rows, K staged through workgroup memory 16 at a time (8 KiB, inside lavapipe's 32 KiB).
// Split-K: when the output has too few tiles to fill the device (weight gradients: small M×N, K = batch
// × pixels), K is cut into slices written as partial tiles and summed by a second kernel.
import type { Engine } from '../engine.ts';
import type { KernelDef } from '../kernel.ts';
import {
  type GemmKernel,
  type GemmOperand,
  type GemmShape,
  gemmUniforms,
  perTransposePair,
  SPLIT_K_STORAGE,
  SPLIT_K_UNIFORMS,
} from './spec.ts';

const TILE = 64;
const TK = 16;

const tiledDef = perTransposePair(
  ({ aIdx, bIdx, suffix }): KernelDef => ({
    name: `gemm_tiled_${suffix}`,
    uniforms: SPLIT_K_UNIFORMS,
    storage: SPLIT_K_STORAGE,
    body: /* wgsl */ `
var<workgroup> As: array<vec4<f32>, ${TK * 16}>; // [k][m/4]
var<workgroup> Bs: array<vec4<f32>, ${TK * 16}>; // [k][n/4]

fn a_at(ao: u32, m: u32, k: u32) -> f32 { return A[ao + ${aIdx}]; }
fn b_at(bo: u32, k: u32, n: u32) -> f32 { return B[bo + ${bIdx}]; }
fn load_a(ao: u32, m: u32, k: u32, kEnd: u32) -> f32 {
  if (m < P.M && k < kEnd) { return A[ao + ${aIdx}]; }
  return 0.0;
}
fn load_b(bo: u32, k: u32, n: u32, kEnd: u32) -> f32 {
  if (n < P.N && k < kEnd) { return B[bo + ${bIdx}]; }
  return 0.0;
}

@compute @workgroup_size(16, 16) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${splitKTileStart(TILE)}
  let tid = lid.y * 16u + lid.x;
  // Each thread stages one vec4 of A (4 consecutive m at one k) and one of B (4 consecutive n).
  let lk = tid / 16u;
  let lq = tid % 16u;
  var acc: array<vec4<f32>, 4>;
  let interior = row0 + ${TILE}u <= P.M && col0 + ${TILE}u <= P.N;
  for (var k0 = kBegin; k0 < kEnd; k0 += ${TK}u) {
    let k = k0 + lk;
    let m = row0 + lq * 4u;
    let n = col0 + lq * 4u;
    if (interior && k0 + ${TK}u <= kEnd) {
      // Whole tile in range (the common case): no per-element bounds checks.
      As[lk * 16u + lq] = vec4(a_at(ao, m, k), a_at(ao, m + 1u, k), a_at(ao, m + 2u, k), a_at(ao, m + 3u, k));
      Bs[lk * 16u + lq] = vec4(b_at(bo, k, n), b_at(bo, k, n + 1u), b_at(bo, k, n + 2u), b_at(bo, k, n + 3u));
    } else {
      As[lk * 16u + lq] = vec4(load_a(ao, m, k, kEnd), load_a(ao, m + 1u, k, kEnd), load_a(ao, m + 2u, k, kEnd), load_a(ao, m + 3u, k, kEnd));
      Bs[lk * 16u + lq] = vec4(load_b(bo, k, n, kEnd), load_b(bo, k, n + 1u, kEnd), load_b(bo, k, n + 2u, kEnd), load_b(bo, k, n + 3u, kEnd));
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TK}u; kk++) {
      let a = As[kk * 16u + lid.y];
      let b = Bs[kk * 16u + lid.x];
      acc[0] += a.x * b;
      acc[1] += a.y * b;
      acc[2] += a.z * b;
      acc[3] += a.w * b;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = row0 + lid.y * 4u + i;
    if (m >= P.M) { break; }
    let r = acc[i];
    for (var j = 0u; j < 4u; j++) {
      let n = col0 + lid.x * 4u + j;
      if (n >= P.N) { break; }
      if (P.splits > 1u) {
        part[split * P.splitStride + (batch * P.M + m) * P.N + n] = r[j];
      } else {
        let ci = P.cBase + batch * P.strideC + m * P.ldc + n;
        if (P.beta != 0.0) { C[ci] = P.alpha * r[j] + P.beta * C[ci]; } else { C[ci] = P.alpha * r[j]; }
      }
    }
  }
}`,
  }),
);

const SPLIT_REDUCE: KernelDef = {
  name: 'gemm_split_k_reduce',
  uniforms: ['M', 'N', 'ldc', 'strideC', 'cBase', 'splits', 'splitStride', 'total', 'alpha:f32', 'beta:f32'],
  storage: [
    { name: 'part', access: 'read' },
    { name: 'C', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= P.total) { return; }
  var s = 0.0;
  for (var k = 0u; k < P.splits; k++) { s += part[k * P.splitStride + i]; }
  let mn = P.M * P.N;
  let b = i / mn;
  let m = (i % mn) / P.N;
  let n = i % P.N;
  let ci = P.cBase + b * P.strideC + m * P.ldc + n;
  if (P.beta != 0.0) { C[ci] = P.alpha * s + P.beta * C[ci]; } else { C[ci] = P.alpha * s; }
}`,
};

/** How many K slices to use so that tiles × slices approaches the device's target workgroup count. */
export function chooseSplits(eng: Engine, s: GemmShape, tileM = TILE, tileN = TILE): number {
  const tiles = Math.ceil(s.M / tileM) * Math.ceil(s.N / tileN) * s.batch;
  if (tiles >= eng.targetWorkgroups || s.K < 512) return 1;
  let splits = Math.min(Math.ceil(eng.targetWorkgroups / tiles), Math.floor(s.K / 256));
  // The partial tiles must fit one binding.
  const perSplit = s.M * s.N * s.batch * 4;
  splits = Math.min(
    splits,
    Math.floor(eng.maxBindingBytes / perSplit),
    Math.floor(eng.maxWorkgroupsPerDim / s.batch),
  );
  return Math.max(1, splits);
}

/**
 * Dispatches a tile kernel that takes the split-K uniforms (`splits`, `kPerSplit`, `splitStride`) and a
 * `part` binding, over a grid of tileM × tileN output tiles, then (when K was split) sums the partials.
 */
/**
 * The first lines of a split-K tiled GEMM kernel: which batch, K range and output tile this workgroup owns, and
 * where its A and B operands start (grid: x = column tiles, y = row tiles, z = batch × splits).
 */
export function splitKTileStart(tile: number): string {
  return `  let batch = wid.z / P.splits;
  let split = wid.z % P.splits;
  let row0 = wid.y * ${tile}u;
  let col0 = wid.x * ${tile}u;
  let kBegin = split * P.kPerSplit;
  let kEnd = min(P.K, kBegin + P.kPerSplit);
  let ao = P.aBase + batch * P.strideA;
  let bo = P.bBase + batch * P.strideB;`;
}

export function encodeSplitK(
  eng: Engine,
  s: GemmShape,
  a: GemmOperand,
  b: GemmOperand,
  c: GemmOperand,
  def: KernelDef,
  tileM: number,
  tileN: number,
  kAlign: number,
  rowsFastest = false,
): void {
  const splits = chooseSplits(eng, s, tileM, tileN);
  const kPerSplit = Math.ceil(s.K / splits / kAlign) * kAlign;
  const used = Math.ceil(s.K / kPerSplit);
  const splitStride = s.M * s.N * s.batch;
  const part = used > 1 ? eng.empty([used * splitStride]) : undefined;
  const tilesN = Math.ceil(s.N / tileN);
  const tilesM = Math.ceil(s.M / tileM);
  const grid: [number, number, number] = rowsFastest
    ? [tilesM, tilesN, s.batch * used]
    : [tilesN, tilesM, s.batch * used];
  eng.dispatch(
    def,
    [a.range, b.range, c.range, part ? part.range() : { buf: eng.scratch, offset: 0, size: 256 }],
    { ...gemmUniforms(s, a, b, c), splits: used, kPerSplit, splitStride },
    grid,
  );
  if (part) {
    const groups = Math.ceil(splitStride / 256);
    const gx = Math.min(groups, eng.maxWorkgroupsPerDim);
    eng.dispatch(
      SPLIT_REDUCE,
      [part.range(), c.range],
      {
        M: s.M,
        N: s.N,
        ldc: s.ldc,
        strideC: s.strideC,
        cBase: c.base,
        splits: used,
        splitStride,
        total: splitStride,
        alpha: s.alpha,
        beta: s.beta,
      },
      [gx, Math.ceil(groups / gx)],
    );
    part.dispose();
  }
}

export const tiledGemm: GemmKernel = {
  name: 'tiled64x64',
  supports: (eng) => eng.maxWorkgroupStorage >= 2 * TK * TILE * 4,
  encode(eng: Engine, s: GemmShape, a: GemmOperand, b: GemmOperand, c: GemmOperand) {
    encodeSplitK(eng, s, a, b, c, tiledDef(s.transA, s.transB), TILE, TILE, TK);
  },
};
