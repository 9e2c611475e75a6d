// softmax(x) over the last dim (attention scores). One workgroup per row; max-subtracted for range. Short
// rows (C ≤ SHORT_ROW, e.g. FastViTHD's attention over 4–16 tokens at 128²) get a thread per row instead:
// a workgroup of mostly idle threads and its barriers cost lavapipe ~4 ms for 1024 rows of 16.
import type { Engine } from '../engine.ts';
import { type KernelDef, LINEAR_INDEX } from '../kernel.ts';
import { grid1d } from '../kernels/elementwise.ts';
import { ROW_MAX_OR_SUM, rowGrid, rowKernel, ROW_WG as WG } from '../kernels/row-kernel.ts';
import type { Tensor } from '../tensor.ts';

const SHORT_ROW = 32;
const SHORT_WG = 64;

// ---- kernels
const FORWARD = rowKernel({
  name: 'softmax',
  storage: [
    { name: 'x', access: 'read' },
    { name: 'y', access: 'read_write' },
  ],
  helpers: ROW_MAX_OR_SUM,
  body: /* wgsl */ `  var m = -3.4e38;
  for (var c = li; c < P.C; c += ${WG}u) { m = max(m, x[base + c]); }
  let mx = row_reduce(m, li, true);
  var s = 0.0;
  for (var c = li; c < P.C; c += ${WG}u) { s += exp(x[base + c] - mx); }
  let inv = 1.0 / row_reduce(s, li, false);
  for (var c = li; c < P.C; c += ${WG}u) { y[base + c] = exp(x[base + c] - mx) * inv; }`,
});

/** dx = y·(dy − Σ dy·y) */
const GRAD = rowKernel({
  name: 'softmax_grad',
  storage: [
    { name: 'y', access: 'read' },
    { name: 'dy', access: 'read' },
    { name: 'dx', access: 'read_write' },
  ],
  helpers: ROW_MAX_OR_SUM,
  body: /* wgsl */ `  var s = 0.0;
  for (var c = li; c < P.C; c += ${WG}u) { s += dy[base + c] * y[base + c]; }
  let d = row_reduce(s, li, false);
  for (var c = li; c < P.C; c += ${WG}u) { dx[base + c] = y[base + c] * (dy[base + c] - d); }`,
});

/** A thread per row: `body` runs with `base` (the row's first element) bound. */
function shortRowKernel(name: string, storage: KernelDef['storage'], body: string): KernelDef {
  return {
    name,
    uniforms: ['rows', 'C'],
    storage,
    body: /* wgsl */ `${LINEAR_INDEX}
@compute @workgroup_size(${SHORT_WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = linear_index(wid, nwg, li, ${SHORT_WG}u);
  if (row >= P.rows) { return; }
  let base = row * P.C;
${body}
}`,
  };
}

const SHORT_FORWARD = shortRowKernel(
  'softmax_short',
  FORWARD.storage,
  /* wgsl */ `  var mx = -3.4e38;
  for (var c = 0u; c < P.C; c++) { mx = max(mx, x[base + c]); }
  var s = 0.0;
  for (var c = 0u; c < P.C; c++) { s += exp(x[base + c] - mx); }
  let inv = 1.0 / s;
  for (var c = 0u; c < P.C; c++) { y[base + c] = exp(x[base + c] - mx) * inv; }`,
);

const SHORT_GRAD = shortRowKernel(
  'softmax_grad_short',
  GRAD.storage,
  /* wgsl */ `  var d = 0.0;
  for (var c = 0u; c < P.C; c++) { d += dy[base + c] * y[base + c]; }
  for (var c = 0u; c < P.C; c++) { dx[base + c] = y[base + c] * (dy[base + c] - d); }`,
);

function dispatchRows(
  eng: Engine,
  long: KernelDef,
  short: KernelDef,
  ranges: Parameters<Engine['dispatch']>[1],
  rows: number,
  C: number,
): void {
  if (C <= SHORT_ROW) eng.dispatch(short, ranges, { rows, C }, grid1d(eng, rows, SHORT_WG));
  else eng.dispatch(long, ranges, { rows, C }, rowGrid(eng, rows));
}

// ---- forward
export function softmax(x: Tensor): Tensor {
  const eng = x.engine;
  const C = x.shape.at(-1) as number;
  const rows = x.size / C;
  const y = eng.empty(x.shape);
  dispatchRows(eng, FORWARD, SHORT_FORWARD, [x.range(), y.range()], rows, C);
  eng.record('softmax', [x], y, [y], (dy) => {
    // ---- gradient
    const dx = eng.empty(x.shape);
    dispatchRows(eng, GRAD, SHORT_GRAD, [y.range(), dy.range(), dx.range()], rows, C);
    return [dx];
  });
  return y;
}
