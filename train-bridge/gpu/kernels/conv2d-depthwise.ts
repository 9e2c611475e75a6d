// WGSL for depthwise convolution in NHWC (groups = Cin, Cout = m·Cin, output o reads input o / m), weights
// [KH, KW, 1, Cout]. Forward: each thread a strip of 8 outputs along W for one channel, so input columns
// are loaded once per strip instead of once per tap. Input gradient: the forward on rotated weights
// (stride 1), else a gather per input element. Weight gradient: tiled partial sums (a workgroup per 64
// channels × a block of output rows) reduced afterwards.
import { type KernelDef, storeOrAdd } from '../kernel.ts';

/** Outputs per thread along W (a multiple of 4: vec4 accumulators). 8 beats 4 by ~2× on lavapipe. */
export const DW_STRIP = 8;

const SHAPE_UNIFORMS = ['N', 'H', 'W', 'Cin', 'Cout', 'Ho', 'Wo', 'mult', 'pad', 'xbase', 'ybase'];
const cache = new Map<string, KernelDef>();

function cached(key: string, make: () => KernelDef): KernelDef {
  let k = cache.get(key);
  if (!k) {
    k = make();
    cache.set(key, k);
  }
  return k;
}

/**
 * `flip` reads the weights rotated by 180°: with stride 1 and multiplier 1 that turns the forward into the
 * input gradient (dx = dy ⋆ rot180(w) with padding k−1−p), so both use the strip kernel.
 */
export function depthwiseForwardDef(KH: number, KW: number, stride: number, flip = false): KernelDef {
  const XW = (DW_STRIP - 1) * stride + KW;
  const tap = flip ? `(${KH - 1}u - kh) * ${KW}u + ${KW - 1}u - kw` : `kh * ${KW}u + kw`;
  const acc = [...Array(DW_STRIP / 4).keys()];
  const store = flip ? storeOrAdd : (target: string, value: string) => `${target} = ${value};`;
  return cached(`f${KH}x${KW}s${stride}${flip ? 'r' : ''}`, () => ({
    name: `conv_dw_fwd_${KH}x${KW}_s${stride}${flip ? '_rot' : ''}`,
    // As the input gradient (flip), it may add into the gradient already there (acc).
    uniforms: [...SHAPE_UNIFORMS, 'total', ...(flip ? ['acc'] : [])],
    storage: [
      { name: 'x', access: 'read' },
      { name: 'wt', access: 'read' },
      { name: 'y', access: 'read_write' },
    ],
    body: /* wgsl */ `
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (wid.y * nwg.x + wid.x) * 64u + li;
  if (t >= P.total) { return; }
  let o = t % P.Cout;
  var r = t / P.Cout;
  let strips = (P.Wo + ${DW_STRIP - 1}u) / ${DW_STRIP}u;
  let wo0 = (r % strips) * ${DW_STRIP}u;
  r = r / strips;
  let ho = r % P.Ho;
  let n = r / P.Ho;
  let ci = o / P.mult;
  ${acc.map((i) => `var acc${i} = vec4<f32>(0.0);`).join(' ')}
  var xv: array<f32, ${XW}>;
  for (var kh = 0u; kh < ${KH}u; kh++) {
    let h = i32(ho * ${stride}u + kh) - i32(P.pad);
    if (h < 0 || h >= i32(P.H)) { continue; }
    let rowBase = P.xbase + (n * P.H + u32(h)) * P.W * P.Cin + ci;
    for (var j = 0u; j < ${XW}u; j++) {
      let w = i32(wo0 * ${stride}u + j) - i32(P.pad);
      xv[j] = select(0.0, x[rowBase + u32(max(w, 0)) * P.Cin], w >= 0 && w < i32(P.W));
    }
    for (var kw = 0u; kw < ${KW}u; kw++) {
      let wv = wt[(${tap}) * P.Cout + o];
      ${acc
        .map(
          (i) =>
            `acc${i} += wv * vec4(${[0, 1, 2, 3].map((q) => `xv[${(4 * i + q) * stride}u + kw]`).join(', ')});`,
        )
        .join('\n      ')}
    }
  }
  let yBase = P.ybase + ((n * P.Ho + ho) * P.Wo) * P.Cout + o;
  ${acc
    .flatMap((i) =>
      [0, 1, 2, 3].map(
        (q) =>
          `if (wo0 + ${4 * i + q}u < P.Wo) { ${store(`y[yBase + (wo0 + ${4 * i + q}u) * P.Cout]`, `acc${i}[${q}]`)} }`,
      ),
    )
    .join('\n  ')}
}`,
  }));
}

/**
 * A thread per input pixel and `cpt` consecutive channels (4 when Cin divides by 4: lavapipe's per-invocation
 * cost and index arithmetic then count once per 4 outputs). Each output's sum runs over the same taps in the
 * same order whatever `cpt` is.
 */
export function depthwiseInputGradDef(KH: number, KW: number, stride: number, cpt = 1): KernelDef {
  const cs = [...Array(cpt).keys()];
  return cached(`dx${KH}x${KW}s${stride}c${cpt}`, () => ({
    name: `conv_dw_dx_${KH}x${KW}_s${stride}${cpt > 1 ? `_c${cpt}` : ''}`,
    uniforms: [...SHAPE_UNIFORMS, 'total', 'cgroups', 'acc'],
    storage: [
      { name: 'dy', access: 'read' },
      { name: 'wt', access: 'read' },
      { name: 'dx', access: 'read_write' },
    ],
    body: /* wgsl */ `
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (wid.y * nwg.x + wid.x) * 64u + li;
  if (t >= P.total) { return; }
  let ci0 = (t % P.cgroups) * ${cpt}u;
  var r = t / P.cgroups;
  let w = r % P.W;
  r = r / P.W;
  let h = r % P.H;
  let n = r / P.H;
  ${cs.map((c) => `var acc${c} = 0.0;`).join(' ')}
  // Only the taps whose output position is whole (kh ≡ h + pad mod stride), in the same ascending order.
  let hp = h + P.pad;
  let wp = w + P.pad;
  for (var kh = hp % ${stride}u; kh < ${KH}u && kh <= hp; kh += ${stride}u) {
    let ho = (hp - kh) / ${stride}u;
    if (ho >= P.Ho) { continue; }
    for (var kw = wp % ${stride}u; kw < ${KW}u && kw <= wp; kw += ${stride}u) {
      let wo = (wp - kw) / ${stride}u;
      if (wo >= P.Wo) { continue; }
      let dyBase = P.ybase + ((n * P.Ho + ho) * P.Wo + wo) * P.Cout + ci0 * P.mult;
      let wBase = (kh * ${KW}u + kw) * P.Cout + ci0 * P.mult;
      for (var j = 0u; j < P.mult; j++) {
        ${cs.map((c) => `acc${c} += dy[dyBase + ${c}u * P.mult + j] * wt[wBase + ${c}u * P.mult + j];`).join('\n        ')}
      }
    }
  }
  ${cs.map((c) => storeOrAdd(`dx[P.xbase + t * ${cpt}u + ${c}u]`, `acc${c}`)).join('\n  ')}
}`,
  }));
}

/**
 * partial[chunk, kh, kw, o] = Σ over the chunk's output rows of dy · x at tap (kh, kw). Each thread walks
 * its rows in strips of DW_STRIP outputs: per strip it loads the strip's dy once and each input row
 * segment once, and keeps all KH·KW sums in named registers (generated, fully unrolled), so a tap costs
 * a quarter of a load instead of one load per multiply.
 */
export function depthwiseWeightGradPartialDef(KH: number, KW: number, stride: number): KernelDef {
  const S = DW_STRIP;
  const XW = (S - 1) * stride + KW;
  const taps = [...Array(KH * KW).keys()];
  const qs = [...Array(S).keys()];
  const js = [...Array(XW).keys()];
  const perRow = (kh: number) =>
    [
      `{ let h = i32(ho * ${stride}u + ${kh}u) - i32(P.pad);`,
      `  if (h >= 0 && h < i32(P.H)) {`,
      `    let rowBase = P.xbase + (n * P.H + u32(h)) * P.W * P.Cin + ci;`,
      ...js.map(
        (j) =>
          `    let w${j} = i32(wo0 * ${stride}u) + ${j} - i32(P.pad); let x${j} = select(0.0, x[rowBase + u32(clamp(w${j}, 0, i32(P.W) - 1)) * P.Cin], w${j} >= 0 && w${j} < i32(P.W));`,
      ),
      ...[...Array(KW).keys()].map(
        (kw) => `    acc${kh * KW + kw} += ${qs.map((q) => `g${q} * x${q * stride + kw}`).join(' + ')};`,
      ),
      '  }',
      '}',
    ].join('\n      ');
  return cached(`dw${KH}x${KW}s${stride}`, () => ({
    name: `conv_dw_dw_partial_${KH}x${KW}_s${stride}`,
    uniforms: [...SHAPE_UNIFORMS, 'rowsPer', 'rows', 'pbase'],
    storage: [
      { name: 'x', access: 'read' },
      { name: 'dy', access: 'read' },
      { name: 'partial', access: 'read_write' },
    ],
    body: /* wgsl */ `
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let o = wid.x * 64u + li;
  if (o >= P.Cout) { return; }
  let ci = o / P.mult;
  ${taps.map((t) => `var acc${t} = 0.0;`).join(' ')}
  let r0 = wid.y * P.rowsPer;
  let r1 = min(r0 + P.rowsPer, P.rows);
  for (var row = r0; row < r1; row++) {
    // row = n·Ho + ho (within this dispatch's images)
    let ho = row % P.Ho;
    let n = row / P.Ho;
    let dyRow = P.ybase + row * P.Wo * P.Cout + o;
    for (var wo0 = 0u; wo0 < P.Wo; wo0 += ${S}u) {
      ${qs
        .map(
          (q) =>
            `let g${q} = select(0.0, dy[dyRow + min(wo0 + ${q}u, P.Wo - 1u) * P.Cout], wo0 + ${q}u < P.Wo);`,
        )
        .join('\n      ')}
      ${[...Array(KH).keys()].map(perRow).join('\n      ')}
    }
  }
  let pb = (P.pbase + wid.y) * ${KH * KW}u * P.Cout + o;
  ${taps.map((t) => `partial[pb + ${t}u * P.Cout] = acc${t};`).join('\n  ')}
}`,
  }));
}
