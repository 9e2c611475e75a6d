// GEMM kernels for GPU adapters: 128×128 output tiles per 256-thread workgroup, an 8×8 register block per
// thread (rows and columns in two groups of 4, 64 apart, so workgroup-memory reads are conflict-free vec4s),
// K staged 16 deep. Variants add vec4 storage loads (when the operands' contiguous dimension, leading
// dimensions, strides and bases are multiples of 4) and subgroup shuffles that hand A's values across a
// subgroup instead of staging A in workgroup memory. CPU adapters never pick these (see row-broadcast.ts).
import type { Engine } from '../engine.ts';
import type { KernelDef } from '../kernel.ts';
import {
  type GemmKernel,
  type GemmOperand,
  type GemmShape,
  SPLIT_K_UNIFORMS,
  transposeSuffix,
} from './spec.ts';
import { encodeSplitK, splitKTileStart } from './tiled.ts';

const TILE = 128;
const TK = 16;
/** vec4 columns of a 128-wide tile row in workgroup memory. */
const Q = TILE / 4;

export interface BlockedVariant {
  /** Fetch 4 consecutive elements with one vec4 load where the operand allows it. */
  vec4: boolean;
  /** Share A through subgroupShuffle (needs the `subgroups` feature) instead of workgroup memory. */
  subgroupA: boolean;
}

interface DefKey extends BlockedVariant {
  transA: boolean;
  transB: boolean;
  /** Which operands are actually read as vec4 (the variant allows it and the call is aligned). */
  a4: boolean;
  b4: boolean;
}

/**
 * WGSL that sets `v` (a vec4) to 4 consecutive elements of an operand along its contiguous dimension:
 * one vec4 load (the operand is then bound as an array of vec4), or 4 scalar loads; `check` guards the elements against the matrix bounds.
 */
function fetch4(op: 'A' | 'B', vec: boolean, first: string, step: string, inRange: (c: number) => string) {
  if (vec)
    return (check: boolean) =>
      `${check ? `if (${inRange(0)}) { ` : ''}v = ${op}[(${first}) / 4u];${check ? ' }' : ''}`;
  return (check: boolean) =>
    [0, 1, 2, 3]
      .map((c) => {
        const load = `v[${c}] = ${op}[${first} + ${c}u * ${step}];`;
        return check ? `if (${inRange(c)}) { ${load} }` : load;
      })
      .join(' ');
}

/** WGSL that writes a vec4 `v` of 4 consecutive k at tile row `r` into `[k][r/4]` (the layout the inner loop reads). */
const scatter = (mem: string, kq: string, r: string) =>
  ['x', 'y', 'z', 'w']
    .map((c, i) => `${mem}[(${kq} * 4u + ${i}u) * 32u + ${r} / 4u][${r} % 4u] = v.${c};`)
    .join(' ');

const defs = new Map<string, KernelDef>();
function blockedDef(key: DefKey): KernelDef {
  const id = JSON.stringify(key);
  const made = defs.get(id);
  if (made) return made;
  const { transA, transB, a4, b4, subgroupA } = key;
  // Contiguous dimension of each operand: A is M×K (contiguous k) or K×M (contiguous m); B K×N or N×K.
  // A group g of 4 elements: for a plain A, row m = g / 4 and k quad g % 4; for Aᵀ, k = g / Q and m quad g % Q.
  const aLoad = transA
    ? {
        coords: 'let k = g / 32u; let mq = g % 32u; let m = row0 + mq * 4u; let kk = k0 + k;',
        fetch: fetch4('A', a4, 'ao + kk * P.lda + m', '1u', (c) => `m + ${c}u < P.M && kk < kEnd`),
        store: 'As[k * 32u + mq] = v;',
      }
    : {
        coords: 'let mr = g / 4u; let kq = g % 4u; let m = row0 + mr; let kk = k0 + kq * 4u;',
        fetch: fetch4('A', a4, 'ao + m * P.lda + kk', '1u', (c) => `m < P.M && kk + ${c}u < kEnd`),
        store: scatter('As', 'kq', 'mr'),
      };
  const bLoad = transB
    ? {
        coords: 'let nr = g / 4u; let kq = g % 4u; let n = col0 + nr; let kk = k0 + kq * 4u;',
        fetch: fetch4('B', b4, 'bo + n * P.ldb + kk', '1u', (c) => `n < P.N && kk + ${c}u < kEnd`),
        store: scatter('Bs', 'kq', 'nr'),
      }
    : {
        coords: 'let k = g / 32u; let nq = g % 32u; let n = col0 + nq * 4u; let kk = k0 + k;',
        fetch: fetch4('B', b4, 'bo + kk * P.ldb + n', '1u', (c) => `n + ${c}u < P.N && kk < kEnd`),
        store: 'Bs[k * 32u + nq] = v;',
      };
  // 128 × 16 elements = 512 groups of 4 per operand tile: two per thread.
  const stage = (l: typeof aLoad, check: boolean) =>
    `for (var i = 0u; i < 2u; i++) { let g = li + i * 256u; ${l.coords} var v = vec4<f32>(); ${l.fetch(check)} ${l.store} }`;
  const acc = [...Array(8).keys()].flatMap((r) => [0, 1].map((c) => `acc${r}_${c}`));
  const fmas = (a0: string, a1: string) =>
    [...Array(8).keys()]
      .flatMap((r) => {
        const a = `${r < 4 ? a0 : a1}[${r % 4}]`;
        return [0, 1].map((c) => `acc${r}_${c} = fma(vec4(${a}), b${c}, acc${r}_${c});`);
      })
      .join(' ');
  const stores = [...Array(8).keys()]
    .flatMap((r) =>
      [0, 1].map((c) => {
        const m = `row0 + ${r < 4 ? 0 : 64}u + y * 4u + ${r % 4}u`;
        return `store4(batch, split, ${m}, col0 + ${c * 64}u + x * 4u, acc${r}_${c});`;
      }),
    )
    .join('\n  ');
  // A's 8 values at one k for this thread's rows (y·4 + i and 64 + y·4 + i), for the subgroup variant.
  const aElem = (m: string, k: string) =>
    transA ? `ao + (${k}) * P.lda + ${m}` : `ao + (${m}) * P.lda + ${k}`;
  const aRows = (check: boolean) =>
    [0, 1]
      .map((h) => {
        const m0 = `row0 + ${h * 64}u + y * 4u`;
        if (a4 && transA) {
          const load = `a${h} = A[(${aElem(m0, 'k')}) / 4u];`;
          return check ? `if (${m0} < P.M && k < kEnd) { ${load} }` : load;
        }
        return [0, 1, 2, 3]
          .map((i) => {
            const e = aElem(`${m0} + ${i}u`, 'k');
            const load = `a${h}[${i}] = ${a4 ? `A[(${e}) / 4u][(${e}) % 4u]` : `A[${e}]`};`;
            return check ? `if (${m0} + ${i}u < P.M && k < kEnd) { ${load} }` : load;
          })
          .join(' ');
      })
      .join(' ');
  const inner = subgroupA
    ? `
    // Lane j of each group of G lanes (all with the same rows) fetches A at k0 + h + j; the others take it
    // by shuffle. G = min(subgroup size, 16) divides 16, so the h loop covers the tile.
    for (var h = 0u; h < ${TK}u; h += G) {
      let k = k0 + h + sgi % G;
      var a0 = vec4<f32>(); var a1 = vec4<f32>();
      if (full) { ${aRows(false)} } else { ${aRows(true)} }
      for (var j = 0u; j < G; j++) {
        let s0 = subgroupShuffle(a0, lane0 + j);
        let s1 = subgroupShuffle(a1, lane0 + j);
        let b0 = Bs[(h + j) * 32u + x];
        let b1 = Bs[(h + j) * 32u + 16u + x];
        ${fmas('s0', 's1')}
      }
    }`
    : `
    for (var kk = 0u; kk < ${TK}u; kk++) {
      let a0 = As[kk * 32u + y];
      let a1 = As[kk * 32u + 16u + y];
      let b0 = Bs[kk * 32u + x];
      let b1 = Bs[kk * 32u + 16u + x];
      ${fmas('a0', 'a1')}
    }`;
  // An aligned operand is bound as an array of vec4 (its binding size is then a multiple of 16 bytes).
  const storage = [
    { name: 'A', access: 'read' as const, type: a4 ? 'vec4<f32>' : 'f32' },
    { name: 'B', access: 'read' as const, type: b4 ? 'vec4<f32>' : 'f32' },
    { name: 'C', access: 'read_write' as const },
    { name: 'part', access: 'read_write' as const },
  ];
  const def: KernelDef = {
    name: `gemm_blocked128${key.vec4 ? 'v4' : ''}${subgroupA ? 'sg' : ''}_${transposeSuffix(transA, transB)}${a4 ? 'A4' : ''}${b4 ? 'B4' : ''}`,
    uniforms: SPLIT_K_UNIFORMS,
    storage,
    enable: subgroupA ? 'enable subgroups;' : undefined,
    body: /* wgsl */ `
${subgroupA ? '' : `var<workgroup> As: array<vec4<f32>, ${TK * Q}>; // [k][m/4]`}
var<workgroup> Bs: array<vec4<f32>, ${TK * Q}>; // [k][n/4]

fn store4(batch: u32, split: u32, m: u32, n0: u32, r: vec4<f32>) {
  if (m >= P.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    let n = n0 + j;
    if (n >= P.N) { return; }
    if (P.splits > 1u) {
      part[split * P.splitStride + (batch * P.M + m) * P.N + n] = r[j];
    } else {
      let ci = P.cBase + batch * P.strideC + m * P.ldc + n;
      if (P.beta != 0.0) { C[ci] = P.alpha * r[j] + P.beta * C[ci]; } else { C[ci] = P.alpha * r[j]; }
    }
  }
}

@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32${
      subgroupA ? ', @builtin(subgroup_invocation_id) sgi: u32, @builtin(subgroup_size) sgs: u32' : ''
    }) {
${splitKTileStart(TILE)}
  let x = li % 16u;
  let y = li / 16u;
  ${
    subgroupA
      ? `// Assumes subgroups are consecutive runs of the local invocation index (what Vulkan drivers do), so
  // the G lanes from lane0 share this thread's y; the selftest's parity cases would catch a driver that does not.
  let G = min(sgs, 16u);
  let lane0 = sgi - sgi % G;`
      : ''
  }
  ${acc.map((a) => `var ${a} = vec4<f32>();`).join(' ')}
  let interior = row0 + ${TILE}u <= P.M && col0 + ${TILE}u <= P.N;
  for (var k0 = kBegin; k0 < kEnd; k0 += ${TK}u) {
    let full = interior && k0 + ${TK}u <= kEnd;
    if (full) {
      ${subgroupA ? '' : stage(aLoad, false)}
      ${stage(bLoad, false)}
    } else {
      ${subgroupA ? '' : stage(aLoad, true)}
      ${stage(bLoad, true)}
    }
    workgroupBarrier();${inner}
    workgroupBarrier();
  }
  ${stores}
}`,
  };
  defs.set(id, def);
  return def;
}

const aligned4 = (...xs: number[]) => xs.every((x) => x % 4 === 0);

/** Whether op(A) can be read as vec4 along its contiguous dimension (K for plain A, M for Aᵀ). */
function vec4A(s: GemmShape, a: GemmOperand): boolean {
  return aligned4(s.transA ? s.M : s.K, s.lda, s.strideA, a.base);
}
function vec4B(s: GemmShape, b: GemmOperand): boolean {
  return aligned4(s.transB ? s.K : s.N, s.ldb, s.strideB, b.base);
}

export function blockedGemm(name: string, v: BlockedVariant): GemmKernel {
  return {
    name,
    gpuOnly: true,
    // Chosen on GPU adapters only, for outputs of at least one full tile per side (smaller ones waste most
    // of a 128×128 tile; the 64×64 kernel takes them).
    supports: (eng, s) =>
      !eng.ctx.adapter.isCpu &&
      (!v.subgroupA || eng.ctx.enabled.subgroups) &&
      s.M >= TILE &&
      s.N >= TILE &&
      eng.maxWorkgroupStorage >= 2 * TK * TILE * 4,
    runsOn: (eng) =>
      (!v.subgroupA || eng.ctx.enabled.subgroups) && eng.maxWorkgroupStorage >= 2 * TK * TILE * 4,
    encode(eng: Engine, s: GemmShape, a: GemmOperand, b: GemmOperand, c: GemmOperand) {
      const a4 = v.vec4 && vec4A(s, a);
      const b4 = v.vec4 && vec4B(s, b);
      const def = blockedDef({ ...v, transA: s.transA, transB: s.transB, a4, b4 });
      encodeSplitK(eng, s, a, b, c, def, TILE, TILE, TK);
    },
  };
}

export const blockedGemm128 = blockedGemm('blocked128', { vec4: false, subgroupA: false });
export const blockedGemm128v4 = blockedGemm('blocked128v4', { vec4: true, subgroupA: false });
export const blockedGemm128v4sg = blockedGemm('blocked128v4sg', { vec4: true, subgroupA: true });
