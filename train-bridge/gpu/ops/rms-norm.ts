// rmsNorm(x, weight, eps) = x / √(mean(x²) + eps) · weight over the last dim, as Qwen2RMSNorm computes it
// (in f32). One workgroup per row; only the per-row 1/rms is kept for the backward.
import { reduceRows } from '../kernels/reduce-rows.ts';
import { ROW_SUM, rowGrid, rowKernel, ROW_WG as WG } from '../kernels/row-kernel.ts';
import { shapeString, type Tensor } from '../tensor.ts';

// ---- kernels

const FORWARD = rowKernel({
  name: 'rms_norm',
  uniforms: ['eps:f32'],
  storage: [
    { name: 'x', access: 'read' },
    { name: 'w', access: 'read' },
    { name: 'y', access: 'read_write' },
    { name: 'rinv', access: 'read_write' },
  ],
  helpers: ROW_SUM,
  body: /* wgsl */ `  var q = 0.0;
  for (var c = li; c < P.C; c += ${WG}u) { let v = x[base + c]; q += v * v; }
  let r = inverseSqrt(row_sum(q, li) / f32(P.C) + P.eps);
  for (var c = li; c < P.C; c += ${WG}u) { y[base + c] = x[base + c] * r * w[c]; }
  if (li == 0u) { rinv[row] = r; }`,
});

/** dx = r·(g − x·r²·mean(g·x)) with g = dy·w; also x·r, which the weight gradient sums against dy. */
const INPUT_GRAD = rowKernel({
  name: 'rms_norm_dx',
  storage: [
    { name: 'dy', access: 'read' },
    { name: 'x', access: 'read' },
    { name: 'rinv', access: 'read' },
    { name: 'w', access: 'read' },
    { name: 'dx', access: 'read_write' },
    { name: 'xr', access: 'read_write' },
  ],
  helpers: ROW_SUM,
  body: /* wgsl */ `  let r = rinv[row];
  var a = 0.0;
  for (var c = li; c < P.C; c += ${WG}u) { a += dy[base + c] * w[c] * x[base + c]; }
  let m = row_sum(a, li) / f32(P.C);
  for (var c = li; c < P.C; c += ${WG}u) {
    let xv = x[base + c];
    dx[base + c] = r * (dy[base + c] * w[c] - xv * r * r * m);
    xr[base + c] = xv * r;
  }`,
});

// ---- forward
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  const eng = x.engine;
  const C = x.shape.at(-1) as number;
  if (weight.size !== C) {
    throw new Error(`rmsNorm: weight ${shapeString(weight.shape)} for ${shapeString(x.shape)}`);
  }
  const rows = x.size / C;
  const y = eng.empty(x.shape);
  const rinv = eng.empty([rows]);
  eng.dispatch(
    FORWARD,
    [x.range(), weight.range(), y.range(), rinv.range()],
    { rows, C, eps },
    rowGrid(eng, rows),
  );
  eng.record('rmsNorm', [x, weight], y, [x, rinv], (dy) => {
    // ---- gradient (both inputs: the x·r the weight needs falls out of the dx kernel)
    const dx = eng.empty(x.shape);
    const xr = eng.empty(x.shape);
    eng.dispatch(
      INPUT_GRAD,
      [dy.range(), x.range(), rinv.range(), weight.range(), dx.range(), xr.range()],
      { rows, C },
      rowGrid(eng, rows),
    );
    const dw = reduceRows(dy, { B: 1, R: rows, C, z: xr, expr: 'xv * zv', shape: weight.shape });
    return [dx, dw];
  });
  if (!eng.gradEnabled || !y.requiresGrad) rinv.dispose();
  return y;
}
