// WGSL for im2col and its adjoint (col2im as a gather), turning a grouped k×k convolution in NHWC into
// GEMMs. col[p, g, kh, kw, cg] for output pixel p, so each group's K block is contiguous.
import { type KernelDef, storeOrAdd } from '../kernel.ts';

const U = ['N', 'H', 'W', 'Cin', 'Ho', 'Wo', 'KH', 'KW', 'stride', 'pad', 'groups', 'xbase', 'total'];

/**
 * One thread per (output pixel, group) writes that group's KH·KW·Cg contiguous values: the index arithmetic
 * (integer divisions by uniforms, scalarised on CPU adapters) runs once per pixel rather than once per
 * element — FastViTHD's RGB stem has 27 values a pixel, and a thread per element spent ~3 ms of lavapipe
 * time per 64² batch of 8 on divisions. `total` is pixels × groups.
 */
export const IM2COL: KernelDef = {
  name: 'im2col',
  uniforms: U,
  storage: [
    { name: 'x', access: 'read' },
    { name: 'col', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (wid.y * nwg.x + wid.x) * 64u + li;
  if (t >= P.total) { return; }
  let Cg = P.Cin / P.groups;
  let g = t % P.groups;
  var r = t / P.groups;
  let wo = r % P.Wo; r = r / P.Wo;
  let ho = r % P.Ho;
  let n = r / P.Ho;
  var o = t * P.KH * P.KW * Cg;
  for (var kh = 0u; kh < P.KH; kh++) {
    let h = i32(ho * P.stride + kh) - i32(P.pad);
    let hin = h >= 0 && h < i32(P.H);
    for (var kw = 0u; kw < P.KW; kw++) {
      let w = i32(wo * P.stride + kw) - i32(P.pad);
      if (hin && w >= 0 && w < i32(P.W)) {
        let src = P.xbase + ((n * P.H + u32(h)) * P.W + u32(w)) * P.Cin + g * Cg;
        for (var cg = 0u; cg < Cg; cg++) { col[o + cg] = x[src + cg]; }
      } else {
        for (var cg = 0u; cg < Cg; cg++) { col[o + cg] = 0.0; }
      }
      o += Cg;
    }
  }
}`,
};

/** dx[n, h, w, c] = Σ over the taps that read it of dcol (added to dx when acc is 1). */
export const COL2IM: KernelDef = {
  name: 'col2im',
  uniforms: [...U, 'acc'],
  storage: [
    { name: 'dcol', access: 'read' },
    { name: 'dx', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (wid.y * nwg.x + wid.x) * 256u + li;
  if (t >= P.total) { return; }
  let Cg = P.Cin / P.groups;
  let c = t % P.Cin;
  var r = t / P.Cin;
  let w = r % P.W; r = r / P.W;
  let h = r % P.H;
  let n = r / P.H;
  let g = c / Cg;
  let cg = c % Cg;
  let K = P.groups * P.KH * P.KW * Cg;
  var acc = 0.0;
  for (var kh = 0u; kh < P.KH; kh++) {
    let hs = i32(h + P.pad) - i32(kh);
    if (hs < 0 || hs % i32(P.stride) != 0) { continue; }
    let ho = u32(hs) / P.stride;
    if (ho >= P.Ho) { continue; }
    for (var kw = 0u; kw < P.KW; kw++) {
      let ws = i32(w + P.pad) - i32(kw);
      if (ws < 0 || ws % i32(P.stride) != 0) { continue; }
      let wo = u32(ws) / P.stride;
      if (wo >= P.Wo) { continue; }
      let p = (n * P.Ho + ho) * P.Wo + wo;
      acc += dcol[p * K + ((g * P.KH + kh) * P.KW + kw) * Cg + cg];
    }
  }
  ${storeOrAdd('dx[P.xbase + t]', 'acc')}
}`,
};
