// avgPool2d(x, {kernel, stride, padding}) over NHWC; padded positions are not counted (PyTorch's
// count_include_pad=False), so border outputs average only real pixels.

import type { KernelDef } from '../kernel.ts';
import { grid1d } from '../kernels/elementwise.ts';
import { shapeString, type Tensor } from '../tensor.ts';

export interface AvgPoolOptions {
  kernel: number;
  stride?: number;
  padding?: number;
}

const U = ['N', 'H', 'W', 'C', 'Ho', 'Wo', 'k', 'stride', 'pad', 'total'];
const WINDOW = /* wgsl */ `
fn count_at(ho: u32, wo: u32) -> f32 {
  let h0 = max(i32(ho * P.stride) - i32(P.pad), 0);
  let h1 = min(i32(ho * P.stride + P.k) - i32(P.pad), i32(P.H));
  let w0 = max(i32(wo * P.stride) - i32(P.pad), 0);
  let w1 = min(i32(wo * P.stride + P.k) - i32(P.pad), i32(P.W));
  return f32((h1 - h0) * (w1 - w0));
}`;

/** What the body calls the pixel of t and the P fields that bound it: (ho, wo) of y or (h, w) of dx. */
interface Pixel {
  h: string;
  w: string;
  H: string;
  W: string;
}
const OUTPUT_PIXEL: Pixel = { h: 'ho', w: 'wo', H: 'Ho', W: 'Wo' };
const INPUT_PIXEL: Pixel = { h: 'h', w: 'w', H: 'H', W: 'W' };

// Both passes run one thread per element `t` of the NHWC tensor they write (y forward, dx backward) and
// split it into n, the pixel and the channel c before `body`.
function perOutputKernel(name: string, read: string, write: string, px: Pixel, body: string): KernelDef {
  return {
    name,
    uniforms: U,
    storage: [
      { name: read, access: 'read' },
      { name: write, access: 'read_write' },
    ],
    body: /* wgsl */ `${WINDOW}
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (wid.y * nwg.x + wid.x) * 256u + li;
  if (t >= P.total) { return; }
  let c = t % P.C;
  var r = t / P.C;
  let ${px.w} = r % P.${px.W}; r = r / P.${px.W};
  let ${px.h} = r % P.${px.H};
  let n = r / P.${px.H};
${body}
}`,
  };
}

// ---- kernels
/** y at (n, ho, wo, c): the mean of the real pixels in its window. */
const MEAN_OF_WINDOW = /* wgsl */ `  var s = 0.0;
  for (var kh = 0u; kh < P.k; kh++) {
    let h = i32(ho * P.stride + kh) - i32(P.pad);
    if (h < 0 || h >= i32(P.H)) { continue; }
    for (var kw = 0u; kw < P.k; kw++) {
      let w = i32(wo * P.stride + kw) - i32(P.pad);
      if (w < 0 || w >= i32(P.W)) { continue; }
      s += x[((n * P.H + u32(h)) * P.W + u32(w)) * P.C + c];
    }
  }
  y[t] = s / count_at(ho, wo);`;

/** dx at (n, h, w, c): dy / count summed over every output whose window holds (h, w). */
const SUM_OVER_WINDOWS = /* wgsl */ `  var s = 0.0;
  for (var kh = 0u; kh < P.k; kh++) {
    let hs = i32(h + P.pad) - i32(kh);
    if (hs < 0 || hs % i32(P.stride) != 0) { continue; }
    let ho = u32(hs) / P.stride;
    if (ho >= P.Ho) { continue; }
    for (var kw = 0u; kw < P.k; kw++) {
      let ws = i32(w + P.pad) - i32(kw);
      if (ws < 0 || ws % i32(P.stride) != 0) { continue; }
      let wo = u32(ws) / P.stride;
      if (wo >= P.Wo) { continue; }
      s += dy[((n * P.Ho + ho) * P.Wo + wo) * P.C + c] / count_at(ho, wo);
    }
  }
  dx[t] = s;`;

const FORWARD = perOutputKernel('avg_pool2d', 'x', 'y', OUTPUT_PIXEL, MEAN_OF_WINDOW);
const GRAD = perOutputKernel('avg_pool2d_grad', 'dy', 'dx', INPUT_PIXEL, SUM_OVER_WINDOWS);

// ---- forward
export function avgPool2d(x: Tensor, o: AvgPoolOptions): Tensor {
  if (x.rank !== 4) throw new Error(`avgPool2d: x ${shapeString(x.shape)} must be NHWC`);
  const [N, H, W, C] = x.shape as [number, number, number, number];
  const k = o.kernel;
  const stride = o.stride ?? k;
  const pad = o.padding ?? 0;
  const Ho = Math.floor((H + 2 * pad - k) / stride) + 1;
  const Wo = Math.floor((W + 2 * pad - k) / stride) + 1;
  if (Ho < 1 || Wo < 1 || pad * 2 > k)
    throw new Error(`avgPool2d: kernel ${k} / padding ${pad} do not fit ${H}×${W}`);
  const eng = x.engine;
  const y = eng.empty([N, Ho, Wo, C]);
  const u = { N, H, W, C, Ho, Wo, k, stride, pad };
  // One thread per element of the tensor written (see perOutputKernel).
  const run = (def: KernelDef, src: Tensor, dst: Tensor) =>
    eng.dispatch(def, [src.range(), dst.range()], { ...u, total: dst.size }, grid1d(eng, dst.size));
  run(FORWARD, x, y);
  eng.record('avgPool2d', [x], y, [], (dy) => {
    // ---- gradient
    const dx = eng.empty(x.shape);
    run(GRAD, dy, dx);
    return [dx];
  });
  return y;
}
