// softmax(x) over the last dim (attention scores). One workgroup per row; max-subtracted for range.
import type { KernelDef } from '../kernel.ts';
import type { Tensor } from '../tensor.ts';

const WG = 64;
const ROW_REDUCE = /* wgsl */ `
var<workgroup> red: array<f32, ${WG}>;
fn row_reduce(v: f32, li: u32, is_max: bool) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] = select(red[li] + red[li + s], max(red[li], red[li + s]), is_max); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;

// ---- kernels
const FORWARD: KernelDef = {
  name: 'softmax',
  uniforms: ['rows', 'C'],
  storage: [
    { name: 'x', access: 'read' },
    { name: 'y', access: 'read_write' },
  ],
  body: /* wgsl */ `${ROW_REDUCE}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= P.rows) { return; }
  let base = row * P.C;
  var m = -3.4e38;
  for (var c = li; c < P.C; c += ${WG}u) { m = max(m, x[base + c]); }
  let mx = row_reduce(m, li, true);
  var s = 0.0;
  for (var c = li; c < P.C; c += ${WG}u) { s += exp(x[base + c] - mx); }
  let inv = 1.0 / row_reduce(s, li, false);
  for (var c = li; c < P.C; c += ${WG}u) { y[base + c] = exp(x[base + c] - mx) * inv; }
}`,
};

/** dx = y·(dy − Σ dy·y) */
const GRAD: KernelDef = {
  name: 'softmax_grad',
  uniforms: ['rows', 'C'],
  storage: [
    { name: 'y', access: 'read' },
    { name: 'dy', access: 'read' },
    { name: 'dx', access: 'read_write' },
  ],
  body: /* wgsl */ `${ROW_REDUCE}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= P.rows) { return; }
  let base = row * P.C;
  var s = 0.0;
  for (var c = li; c < P.C; c += ${WG}u) { s += dy[base + c] * y[base + c]; }
  let d = row_reduce(s, li, false);
  for (var c = li; c < P.C; c += ${WG}u) { dx[base + c] = y[base + c] * (dy[base + c] - d); }
}`,
};

function rowGrid(maxPerDim: number, rows: number): [number, number] {
  const gx = Math.min(rows, maxPerDim);
  return [gx, Math.ceil(rows / gx)];
}

// ---- forward
export function softmax(x: Tensor): Tensor {
  const eng = x.engine;
  const C = x.shape.at(-1) as number;
  const rows = x.size / C;
  const y = eng.empty(x.shape);
  eng.dispatch(FORWARD, [x.range(), y.range()], { rows, C }, rowGrid(eng.maxWorkgroupsPerDim, rows));
  eng.record('softmax', [x], y, [y], (dy) => {
    // ---- gradient
    const dx = eng.empty(x.shape);
    eng.dispatch(
      GRAD,
      [y.range(), dy.range(), dx.range()],
      { rows, C },
      rowGrid(eng.maxWorkgroupsPerDim, rows),
    );
    return [dx];
  });
  return y;
}
