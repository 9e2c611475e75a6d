// meanSpatial(x): NHWC [N,H,W,C] → [N,C], the global average pool of the SE block and of heads.

import type { KernelDef } from '../kernel.ts';
import { grid1d } from '../kernels/elementwise.ts';
import { reduceRows } from '../kernels/reduce-rows.ts';
import { shapeString, type Tensor } from '../tensor.ts';

// ---- kernel (gradient): spread dy[n, c] / (H·W) over every pixel of image n
const SPREAD: KernelDef = {
  name: 'mean_spatial_grad',
  uniforms: ['n', 'C', 'HWC', 'scale:f32'],
  storage: [
    { name: 'dy', access: 'read' },
    { name: 'dx', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= P.n) { return; }
  dx[i] = dy[(i / P.HWC) * P.C + i % P.C] * P.scale;
}`,
};

// ---- forward
export function meanSpatial(x: Tensor): Tensor {
  if (x.rank !== 4) throw new Error(`meanSpatial: x ${shapeString(x.shape)} must be NHWC`);
  const [N, H, W, C] = x.shape as [number, number, number, number];
  const eng = x.engine;
  const y = reduceRows(x, { B: N, R: H * W, C, scale: 1 / (H * W), shape: [N, C] });
  eng.record('meanSpatial', [x], y, [], (dy) => {
    const dx = eng.empty(x.shape);
    eng.dispatch(
      SPREAD,
      [dy.range(), dx.range()],
      { n: dx.size, C, HWC: H * W * C, scale: 1 / (H * W) },
      grid1d(eng, dx.size),
    );
    return [dx];
  });
  return y;
}
