// layerNormChannel(x, γ, β, eps): normalise over the channel (last) dim at every pixel of NHWC x, as
// FastViTHD's LayerNormChannel does before attention. One workgroup per pixel row.

import { reduceRows } from '../kernels/reduce-rows.ts';
import { ROW_SUM, rowGrid, rowKernel, ROW_WG as WG } from '../kernels/row-kernel.ts';
import { shapeString, type Tensor } from '../tensor.ts';

// ---- kernels

const FORWARD = rowKernel({
  name: 'layer_norm_channel',
  uniforms: ['eps:f32'],
  storage: [
    { name: 'x', access: 'read' },
    { name: 'gamma', access: 'read' },
    { name: 'beta', access: 'read' },
    { name: 'y', access: 'read_write' },
    { name: 'xhat', access: 'read_write' },
    { name: 'invstd', access: 'read_write' },
  ],
  helpers: ROW_SUM,
  body: /* wgsl */ `  var s = 0.0;
  for (var c = li; c < P.C; c += ${WG}u) { s += x[base + c]; }
  let mean = row_sum(s, li) / f32(P.C);
  var q = 0.0;
  for (var c = li; c < P.C; c += ${WG}u) { let d = x[base + c] - mean; q += d * d; }
  let inv = inverseSqrt(row_sum(q, li) / f32(P.C) + P.eps);
  for (var c = li; c < P.C; c += ${WG}u) {
    let h = (x[base + c] - mean) * inv;
    xhat[base + c] = h;
    y[base + c] = h * gamma[c] + beta[c];
  }
  if (li == 0u) { invstd[row] = inv; }`,
});

/** dx = invstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·γ. */
const INPUT_GRAD = rowKernel({
  name: 'layer_norm_channel_dx',
  storage: [
    { name: 'dy', access: 'read' },
    { name: 'xhat', access: 'read' },
    { name: 'invstd', access: 'read' },
    { name: 'gamma', access: 'read' },
    { name: 'dx', access: 'read_write' },
  ],
  helpers: ROW_SUM,
  body: /* wgsl */ `  var a = 0.0;
  var b = 0.0;
  for (var c = li; c < P.C; c += ${WG}u) {
    let g = dy[base + c] * gamma[c];
    a += g;
    b += g * xhat[base + c];
  }
  let ma = row_sum(a, li) / f32(P.C);
  let mb = row_sum(b, li) / f32(P.C);
  let inv = invstd[row];
  for (var c = li; c < P.C; c += ${WG}u) {
    dx[base + c] = inv * (dy[base + c] * gamma[c] - ma - xhat[base + c] * mb);
  }`,
});

// ---- forward
export function layerNormChannel(x: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
  const eng = x.engine;
  const C = x.shape.at(-1) as number;
  if (gamma.size !== C || beta.size !== C) {
    throw new Error(
      `layerNormChannel: γ ${shapeString(gamma.shape)} / β ${shapeString(beta.shape)} for ${shapeString(x.shape)}`,
    );
  }
  const rows = x.size / C;
  const y = eng.empty(x.shape);
  const xhat = eng.empty(x.shape);
  const invstd = eng.empty([rows]);
  eng.dispatch(
    FORWARD,
    [x.range(), gamma.range(), beta.range(), y.range(), xhat.range(), invstd.range()],
    { rows, C, eps },
    rowGrid(eng, rows),
  );
  eng.record('layerNormChannel', [x, gamma, beta], y, [xhat, invstd], (dy, needs) => {
    // ---- gradient
    let dx: Tensor | undefined;
    if (needs[0]) {
      dx = eng.empty(x.shape);
      eng.dispatch(
        INPUT_GRAD,
        [dy.range(), xhat.range(), invstd.range(), gamma.range(), dx.range()],
        { rows, C },
        rowGrid(eng, rows),
      );
    }
    const dgamma = needs[1]
      ? reduceRows(dy, { B: 1, R: rows, C, z: xhat, expr: 'xv * zv', shape: gamma.shape })
      : undefined;
    const dbeta = needs[2] ? reduceRows(dy, { B: 1, R: rows, C, shape: beta.shape }) : undefined;
    return [dx, dgamma, dbeta];
  });
  if (!eng.gradEnabled || !y.requiresGrad) {
    xhat.dispose();
    invstd.dispose();
  }
  return y;
}
