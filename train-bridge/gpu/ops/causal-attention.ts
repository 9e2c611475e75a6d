// causalAttention(q, k, v, segments): Qwen2's attention core — causal, grouped-query (each K/V head
// serves Hq/Hkv query heads), tokens laid out [T, heads, headDim] with the batch's samples side by side
// in T. `segments[t]` names t's sample (−1 = padding): a token attends to the earlier tokens of its own run
// of equal ids only, so padded or packed batches never attend across samples or to padding.
//
// Tiled with an online softmax (FlashAttention-2's scheme): a workgroup owns 64 queries of one head and
// streams 16-key tiles of K and V through workgroup memory, so no L×L score matrix exists, forward or
// backward. The forward keeps only the output and each row's log-sum-exp; the backward recomputes the
// probabilities, once query-major for dQ and once key-major for dK/dV (each key thread sums over every
// query head of its group), so no gradient needs atomics and every sum has a fixed order.
// decodeAttention, below, is the same forward over explicit key ranges of a KV cache (inference).
import type { KernelDef, StorageBinding } from '../kernel.ts';
import { grid1d } from '../kernels/elementwise.ts';
import { shapeString, type Tensor } from '../tensor.ts';

/** Queries (forward, dQ) or keys (dK/dV) per workgroup: one per thread. */
const WG = 64;
/** Keys (forward, dQ) or queries (dK/dV) staged per tile. */
const TILE = 16;

// ---- kernels
// Head vectors live in hd/4 named vec4 registers (`rq0`, `rq1`, …), generated unrolled: an array indexed
// in a loop would sit in scratch memory (per-lane gathers on lavapipe, local memory on a GPU).
const V4 = 'vec4<f32>';

/** One line per register: `f(i)` for i < n. */
function unrolled(n: number, f: (i: number) => string): string {
  return Array.from({ length: n }, (_, i) => f(i)).join('\n  ');
}

/** A sum of `f(i)` for i < n, as one expression. */
function summed(n: number, f: (i: number) => string): string {
  return Array.from({ length: n }, (_, i) => f(i)).join(' + ');
}

const vec4Binding = (name: string, access: 'read' | 'read_write' = 'read'): StorageBinding => ({
  name,
  access,
  type: V4,
});

/** The bindings both backward kernels read first. */
const GRAD_INPUTS: StorageBinding[] = [
  vec4Binding('q'),
  vec4Binding('k'),
  vec4Binding('v'),
  vec4Binding('dout'),
  { name: 'lse', access: 'read' },
  { name: 'delta', access: 'read' },
];
const kernels = new Map<string, KernelDef>();

function cached(key: string, make: () => KernelDef): KernelDef {
  let k = kernels.get(key);
  if (!k) {
    k = make();
    kernels.set(key, k);
  }
  return k;
}

/** WGSL shared by the three tiled kernels: constants, two tiles and the workgroup's [lo, hi) range. */
function prelude(nv: number, tiles: [string, string]): string {
  return /* wgsl */ `
const WG = ${WG}u;
const TILE = ${TILE}u;
const NV = ${nv}u;
var<workgroup> wlo: u32;
var<workgroup> whi: u32;
var<workgroup> ${tiles[0]}: array<${V4}, ${TILE * nv}>;
var<workgroup> ${tiles[1]}: array<${V4}, ${TILE * nv}>;`;
}

/** Reads this workgroup's [lo, hi) as uniform values (every thread takes part in the barriers). */
const BLOCK_RANGE = /* wgsl */ `if (li == 0u) { wlo = blocks[2u * wid.x]; whi = blocks[2u * wid.x + 1u]; }
  let lo = workgroupUniformLoad(&wlo);
  let hi = workgroupUniformLoad(&whi);`;

/** Stages rows [i0, min(i0 + TILE, hi)) of head `hh` of `a` and `b` (zeros past hi) into two tiles. */
function stageTiles(a: string, b: string, ta: string, tb: string, heads: string, hh: string): string {
  return /* wgsl */ `for (var e = li; e < TILE * NV; e += WG) {
      let r = i0 + e / NV;
      var xa = ${V4}(0.0);
      var xb = ${V4}(0.0);
      if (r < hi) {
        let off = (r * ${heads} + ${hh}) * NV + e % NV;
        xa = ${a}[off];
        xb = ${b}[off];
      }
      ${ta}[e] = xa;
      ${tb}[e] = xb;
    }`;
}

function forwardKernel(hd: number): KernelDef {
  const nv = hd / 4;
  return cached(`fwd${hd}`, () => ({
    name: `causal_attention_${hd}`,
    uniforms: ['T', 'Hq', 'Hkv', 'G', 'scale:f32'],
    storage: [
      vec4Binding('q'),
      vec4Binding('k'),
      vec4Binding('v'),
      { name: 'krange', access: 'read', type: 'u32' },
      { name: 'blocks', access: 'read', type: 'u32' },
      vec4Binding('o', 'read_write'),
      { name: 'lse', access: 'read_write' },
    ],
    body: /* wgsl */ `${prelude(nv, ['kt', 'vt'])}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let h = wid.y;
  let hk = h / P.G;
  let t = wid.x * WG + li;
  ${BLOCK_RANGE}
  ${unrolled(nv, (i) => `var rq${i} = ${V4}(0.0);\n  var ra${i} = ${V4}(0.0);`)}
  var myLo = 0u;
  var myHi = 0u;
  if (t < P.T) {
    myLo = krange[2u * t];
    myHi = krange[2u * t + 1u];
    let qb = (t * P.Hq + h) * NV;
    ${unrolled(nv, (i) => `rq${i} = q[qb + ${i}u] * P.scale;`)}
  }
  var m = -3.0e38;
  var l = 0.0;
  for (var i0 = lo; i0 < hi; i0 += TILE) {
    ${stageTiles('k', 'v', 'kt', 'vt', 'P.Hkv', 'hk')}
    workgroupBarrier();
    for (var jj = 0u; jj < TILE; jj++) {
      let j = i0 + jj;
      if (j >= myLo && j < myHi) {
        let b = jj * NV;
        let s = ${summed(nv, (i) => `dot(rq${i}, kt[b + ${i}u])`)};
        let mn = max(m, s);
        let corr = exp(m - mn);
        let p = exp(s - mn);
        l = l * corr + p;
        ${unrolled(nv, (i) => `ra${i} = ra${i} * corr + p * vt[b + ${i}u];`)}
        m = mn;
      }
    }
    workgroupBarrier();
  }
  if (t < P.T) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    let ob = (t * P.Hq + h) * NV;
    ${unrolled(nv, (i) => `o[ob + ${i}u] = ra${i} * inv;`)}
    lse[t * P.Hq + h] = select(0.0, m + log(l), l > 0.0);
  }
}`,
  }));
}

/** Δ[t, h] = dO[t, h]·O[t, h], the row term of softmax's backward. */
function deltaKernel(hd: number): KernelDef {
  const nv = hd / 4;
  return cached(`delta${hd}`, () => ({
    name: `causal_attention_delta_${hd}`,
    uniforms: ['n'],
    storage: [vec4Binding('dout'), vec4Binding('o'), { name: 'delta', access: 'read_write' }],
    body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= P.n) { return; }
  var s = 0.0;
  for (var d = 0u; d < ${nv}u; d++) { s += dot(dout[i * ${nv}u + d], o[i * ${nv}u + d]); }
  delta[i] = s;
}`,
  }));
}

/** dQ_i = scale · Σ_j P_ij (dO_i·v_j − Δ_i) k_j, query-major like the forward. */
function dqKernel(hd: number): KernelDef {
  const nv = hd / 4;
  return cached(`dq${hd}`, () => ({
    name: `causal_attention_dq_${hd}`,
    uniforms: ['T', 'Hq', 'Hkv', 'G', 'scale:f32'],
    storage: [
      ...GRAD_INPUTS,
      { name: 'krange', access: 'read', type: 'u32' },
      { name: 'blocks', access: 'read', type: 'u32' },
      vec4Binding('dq', 'read_write'),
    ],
    body: /* wgsl */ `${prelude(nv, ['kt', 'vt'])}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let h = wid.y;
  let hk = h / P.G;
  let t = wid.x * WG + li;
  ${BLOCK_RANGE}
  ${unrolled(nv, (i) => `var rq${i} = ${V4}(0.0);\n  var rg${i} = ${V4}(0.0);\n  var ra${i} = ${V4}(0.0);`)}
  var myLo = 0u;
  var myHi = 0u;
  var L = 0.0;
  var D = 0.0;
  if (t < P.T) {
    myLo = krange[2u * t];
    myHi = krange[2u * t + 1u];
    let qb = (t * P.Hq + h) * NV;
    ${unrolled(nv, (i) => `rq${i} = q[qb + ${i}u] * P.scale;\n    rg${i} = dout[qb + ${i}u];`)}
    L = lse[t * P.Hq + h];
    D = delta[t * P.Hq + h];
  }
  for (var i0 = lo; i0 < hi; i0 += TILE) {
    ${stageTiles('k', 'v', 'kt', 'vt', 'P.Hkv', 'hk')}
    workgroupBarrier();
    for (var jj = 0u; jj < TILE; jj++) {
      let j = i0 + jj;
      if (j >= myLo && j < myHi) {
        let b = jj * NV;
        let p = exp(${summed(nv, (i) => `dot(rq${i}, kt[b + ${i}u])`)} - L);
        let ds = p * (${summed(nv, (i) => `dot(rg${i}, vt[b + ${i}u])`)} - D);
        ${unrolled(nv, (i) => `ra${i} += ds * kt[b + ${i}u];`)}
      }
    }
    workgroupBarrier();
  }
  if (t < P.T) {
    let qb = (t * P.Hq + h) * NV;
    ${unrolled(nv, (i) => `dq[qb + ${i}u] = ra${i} * P.scale;`)}
  }
}`,
  }));
}

/**
 * dV_j = Σ_i P_ij dO_i and dK_j = scale · Σ_i P_ij (dO_i·v_j − Δ_i) q_i over the queries i ≥ j of j's sample
 * and every query head of j's group: key-major, 64 keys of one K/V head per workgroup.
 */
function dkvKernel(hd: number): KernelDef {
  const nv = hd / 4;
  return cached(`dkv${hd}`, () => ({
    name: `causal_attention_dkv_${hd}`,
    uniforms: ['T', 'Hq', 'Hkv', 'G', 'scale:f32'],
    storage: [
      ...GRAD_INPUTS,
      { name: 'qrange', access: 'read', type: 'u32' },
      { name: 'blocks', access: 'read', type: 'u32' },
      vec4Binding('dk', 'read_write'),
      vec4Binding('dv', 'read_write'),
    ],
    body: /* wgsl */ `${prelude(nv, ['qt', 'ot'])}
var<workgroup> lt: array<f32, ${TILE}>;
var<workgroup> dt: array<f32, ${TILE}>;
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let hk = wid.y;
  let j = wid.x * WG + li;
  ${BLOCK_RANGE}
  ${unrolled(nv, (i) => `var rk${i} = ${V4}(0.0);\n  var rv${i} = ${V4}(0.0);\n  var rdk${i} = ${V4}(0.0);\n  var rdv${i} = ${V4}(0.0);`)}
  var myLo = 0u;
  var myHi = 0u;
  if (j < P.T) {
    myLo = qrange[2u * j];
    myHi = qrange[2u * j + 1u];
    let kb = (j * P.Hkv + hk) * NV;
    ${unrolled(nv, (i) => `rk${i} = k[kb + ${i}u] * P.scale;\n    rv${i} = v[kb + ${i}u];`)}
  }
  for (var g = 0u; g < P.G; g++) {
    let h = hk * P.G + g;
    for (var i0 = lo; i0 < hi; i0 += TILE) {
      ${stageTiles('q', 'dout', 'qt', 'ot', 'P.Hq', 'h')}
      if (li < TILE) {
        let i = i0 + li;
        var lx = 0.0;
        var dx = 0.0;
        if (i < hi) {
          lx = lse[i * P.Hq + h];
          dx = delta[i * P.Hq + h];
        }
        lt[li] = lx;
        dt[li] = dx;
      }
      workgroupBarrier();
      for (var ii = 0u; ii < TILE; ii++) {
        let i = i0 + ii;
        if (i >= myLo && i < myHi) {
          let b = ii * NV;
          let p = exp(${summed(nv, (x) => `dot(rk${x}, qt[b + ${x}u])`)} - lt[ii]);
          ${unrolled(nv, (x) => `rdv${x} += p * ot[b + ${x}u];`)}
          let ds = p * (${summed(nv, (x) => `dot(ot[b + ${x}u], rv${x})`)} - dt[ii]);
          ${unrolled(nv, (x) => `rdk${x} += ds * qt[b + ${x}u];`)}
        }
      }
      workgroupBarrier();
    }
  }
  if (j < P.T) {
    let kb = (j * P.Hkv + hk) * NV;
    ${unrolled(nv, (i) => `dk[kb + ${i}u] = rdk${i} * P.scale;\n    dv[kb + ${i}u] = rdv${i};`)}
  }
}`,
  }));
}

/** Each token's [lo, hi) of keys it attends (query-major) and of queries that attend it (key-major). */
interface SegmentPlan {
  keyRanges: Uint32Array;
  queryRanges: Uint32Array;
}

function planSegments(segments: Int32Array): SegmentPlan {
  const T = segments.length;
  const keyRanges = new Uint32Array(2 * T);
  const queryRanges = new Uint32Array(2 * T);
  for (let t = 0; t < T; t++) {
    const s = segments[t] as number;
    const lo = s < 0 ? t + 1 : t > 0 && segments[t - 1] === s ? (keyRanges[2 * t - 2] as number) : t;
    keyRanges.set([lo, Math.max(lo, t + 1)], 2 * t);
  }
  for (let t = T - 1; t >= 0; t--) {
    const s = segments[t] as number;
    const hi = s < 0 ? t : t + 1 < T && segments[t + 1] === s ? (queryRanges[2 * t + 3] as number) : t + 1;
    queryRanges.set([t, hi], 2 * t);
  }
  return { keyRanges, queryRanges };
}

/** The [lo, hi) a 64-token block's threads visit together: the union of their non-empty ranges. */
function blockRanges(ranges: Uint32Array): Uint32Array {
  const T = ranges.length / 2;
  const nb = Math.ceil(T / WG);
  const out = new Uint32Array(2 * nb);
  for (let b = 0; b < nb; b++) {
    let lo = Infinity;
    let hi = 0;
    for (let t = b * WG; t < Math.min(T, (b + 1) * WG); t++) {
      const [l, h] = [ranges[2 * t] as number, ranges[2 * t + 1] as number];
      if (h <= l) continue;
      lo = Math.min(lo, l);
      hi = Math.max(hi, h);
    }
    if (hi > 0) out.set([lo, hi], 2 * b);
  }
  return out;
}

export interface CausalAttentionOptions {
  /** Default 1/√headDim. */
  scale?: number;
}

// ---- forward
export function causalAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  segments: Int32Array,
  o: CausalAttentionOptions = {},
): Tensor {
  const [T, Hq, hd] = q.shape as [number, number, number];
  const Hkv = k.shape[1] as number;
  if (
    q.rank !== 3 ||
    k.rank !== 3 ||
    v.rank !== 3 ||
    k.shape[0] !== T ||
    k.shape[2] !== hd ||
    v.shape.some((d, i) => d !== k.shape[i]) ||
    Hq % Hkv !== 0 ||
    hd % 4 !== 0 ||
    segments.length !== T
  ) {
    throw new Error(
      `causalAttention: q ${shapeString(q.shape)}, k ${shapeString(k.shape)}, v ${shapeString(v.shape)}, ` +
        `${segments.length} segment ids (want [T, Hq, d], [T, Hkv, d] twice with Hkv dividing Hq, d a multiple of 4, T ids)`,
    );
  }
  const eng = q.engine;
  const scale = o.scale ?? 1 / Math.sqrt(hd);
  const G = Hq / Hkv;
  const plan = planSegments(segments);
  const nb = Math.ceil(T / WG);
  const u = { T, Hq, Hkv, G, scale };
  const y = eng.empty([T, Hq, hd]);
  const lse = eng.empty([T, Hq]);
  const krange = eng.uploadBits(plan.keyRanges, [2 * T]);
  const qBlocks = eng.uploadBits(blockRanges(plan.keyRanges), [2 * nb]);
  eng.dispatch(
    forwardKernel(hd),
    [q.range(), k.range(), v.range(), krange.range(), qBlocks.range(), y.range(), lse.range()],
    u,
    [nb, Hq],
  );
  eng.record('causalAttention', [q, k, v], y, [y, lse, krange, qBlocks], (dy, needs) => {
    // ---- gradient
    const delta = eng.empty([T, Hq]);
    eng.dispatch(deltaKernel(hd), [dy.range(), y.range(), delta.range()], { n: T * Hq }, grid1d(eng, T * Hq));
    let dq: Tensor | undefined;
    if (needs[0]) {
      dq = eng.empty(q.shape);
      eng.dispatch(
        dqKernel(hd),
        [
          q.range(),
          k.range(),
          v.range(),
          dy.range(),
          lse.range(),
          delta.range(),
          krange.range(),
          qBlocks.range(),
          dq.range(),
        ],
        u,
        [nb, Hq],
      );
    }
    if (!needs[1] && !needs[2]) return [dq, undefined, undefined];
    const qrange = eng.uploadBits(plan.queryRanges, [2 * T]);
    const kBlocks = eng.uploadBits(blockRanges(plan.queryRanges), [2 * nb]);
    const dk = eng.empty(k.shape);
    const dv = eng.empty(v.shape);
    eng.dispatch(
      dkvKernel(hd),
      [
        q.range(),
        k.range(),
        v.range(),
        dy.range(),
        lse.range(),
        delta.range(),
        qrange.range(),
        kBlocks.range(),
        dk.range(),
        dv.range(),
      ],
      u,
      [nb, Hkv],
    );
    return [dq, needs[1] ? dk : undefined, needs[2] ? dv : undefined];
  });
  if (!eng.gradEnabled || !y.requiresGrad) {
    for (const t of [lse, krange, qBlocks]) t.dispose();
  }
  return y;
}

/**
 * decodeAttention(q, k, v, keyRanges): inference-time attention for decoding with a KV cache — query t
 * attends keys [keyRanges[2t], keyRanges[2t+1]) of k/v, which may hold more tokens than q (each sample's
 * cached keys plus its new ones). Grouped-query heads as causalAttention; the same tiled forward kernel.
 * Forward only: it records nothing, so call it under eng.noGrad.
 */
export function decodeAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  keyRanges: Int32Array,
  o: CausalAttentionOptions = {},
): Tensor {
  const [Tq, Hq, hd] = q.shape as [number, number, number];
  const [Tk, Hkv] = k.shape as [number, number, number];
  if (
    q.rank !== 3 ||
    k.rank !== 3 ||
    k.shape[2] !== hd ||
    v.shape.some((d, i) => d !== k.shape[i]) ||
    Hq % Hkv !== 0 ||
    hd % 4 !== 0 ||
    keyRanges.length !== 2 * Tq
  ) {
    throw new Error(
      `decodeAttention: q ${shapeString(q.shape)}, k ${shapeString(k.shape)}, v ${shapeString(v.shape)}, ` +
        `${keyRanges.length} range bounds (want [Tq, Hq, d], [Tk, Hkv, d] twice, d a multiple of 4, 2·Tq bounds)`,
    );
  }
  for (let t = 0; t < Tq; t++) {
    const [lo, hi] = [keyRanges[2 * t] as number, keyRanges[2 * t + 1] as number];
    if (!(lo >= 0 && lo <= hi && hi <= Tk))
      throw new Error(`decodeAttention: query ${t} range [${lo}, ${hi}) outside the ${Tk} keys`);
  }
  if (q.engine.gradEnabled && [q, k, v].some((t) => t.requiresGrad))
    throw new Error('decodeAttention: forward only (no gradient); run it under eng.noGrad');
  const eng = q.engine;
  const ranges = Uint32Array.from(keyRanges);
  const nb = Math.ceil(Tq / WG);
  const y = eng.empty([Tq, Hq, hd]);
  const lse = eng.empty([Tq, Hq]);
  const krange = eng.uploadBits(ranges, [2 * Tq]);
  const qBlocks = eng.uploadBits(blockRanges(ranges), [2 * nb]);
  eng.dispatch(
    forwardKernel(hd),
    [q.range(), k.range(), v.range(), krange.range(), qBlocks.range(), y.range(), lse.range()],
    { T: Tq, Hq, Hkv, G: Hq / Hkv, scale: o.scale ?? 1 / Math.sqrt(hd) },
    [nb, Hq],
  );
  for (const t of [lse, krange, qBlocks]) t.dispose();
  return y;
}
