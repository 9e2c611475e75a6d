// softmax(x) over the last dim (attention scores). One workgroup per row; max-subtracted for range.
import { ROW_MAX_OR_SUM, rowGrid, rowKernel, ROW_WG as WG } from '../kernels/row-kernel.ts';
import type { Tensor } from '../tensor.ts';

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

// ---- forward
export function softmax(x: Tensor): Tensor {
  const eng = x.engine;
  const C = x.shape.at(-1) as number;
  const rows = x.size / C;
  const y = eng.empty(x.shape);
  eng.dispatch(FORWARD, [x.range(), y.range()], { rows, C }, rowGrid(eng, rows));
  eng.record('softmax', [x], y, [y], (dy) => {
    // ---- gradient
    const dx = eng.empty(x.shape);
    eng.dispatch(GRAD, [y.range(), dy.range(), dx.range()], { rows, C }, rowGrid(eng, rows));
    return [dx];
  });
  return y;
}
