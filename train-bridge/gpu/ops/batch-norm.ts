// batchNorm(x, bn, training) over the last (channel) dim of NHWC x: training mode normalises with the
// batch's statistics over N·H·W (two-pass mean/variance) and updates the running statistics in place
// (PyTorch's momentum convention, unbiased running variance); eval mode uses the running statistics.
import type { Engine } from '../engine.ts';
import type { KernelDef } from '../kernel.ts';
import { grid1d } from '../kernels/elementwise.ts';
import { reduceRows } from '../kernels/reduce-rows.ts';
import { shapeString, type Tensor } from '../tensor.ts';

export interface BatchNormState {
  weight: Tensor;
  bias: Tensor;
  runningMean: Tensor;
  runningVar: Tensor;
  /** Weight of the new batch statistic in the running average (PyTorch default 0.1). */
  momentum: number;
  eps: number;
}

// ---- kernels
/** invstd = 1/√(var+eps); in training also folds the batch statistics into the running ones. */
const STATS: KernelDef = {
  name: 'batch_norm_stats',
  uniforms: ['C', 'train', 'eps:f32', 'momentum:f32', 'unbias:f32'],
  storage: [
    { name: 'mean', access: 'read' },
    { name: 'variance', access: 'read' },
    { name: 'invstd', access: 'read_write' },
    { name: 'runMean', access: 'read_write' },
    { name: 'runVar', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= P.C) { return; }
  invstd[c] = inverseSqrt(variance[c] + P.eps);
  if (P.train == 1u) {
    runMean[c] = (1.0 - P.momentum) * runMean[c] + P.momentum * mean[c];
    runVar[c] = (1.0 - P.momentum) * runVar[c] + P.momentum * variance[c] * P.unbias;
  }
}`,
};

/** y = (x − mean[c])·invstd[c]·γ[c] + β[c] */
const APPLY: KernelDef = {
  name: 'batch_norm_apply',
  uniforms: ['n', 'C'],
  storage: [
    { name: 'x', access: 'read' },
    { name: 'mean', access: 'read' },
    { name: 'invstd', access: 'read' },
    { name: 'gamma', access: 'read' },
    { name: 'beta', access: 'read' },
    { name: 'y', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= P.n) { return; }
  let c = i % P.C;
  y[i] = (x[i] - mean[c]) * invstd[c] * gamma[c] + beta[c];
}`,
};

/** Training: dx = γ·invstd/R·(R·dy − Σdy − x̂·Σdy·x̂); eval: dx = γ·invstd·dy. */
const INPUT_GRAD: KernelDef = {
  name: 'batch_norm_dx',
  uniforms: ['n', 'C', 'train', 'R:f32'],
  storage: [
    { name: 'dy', access: 'read' },
    { name: 'x', access: 'read' },
    { name: 'mean', access: 'read' },
    { name: 'invstd', access: 'read' },
    { name: 'gamma', access: 'read' },
    { name: 'dbeta', access: 'read' },
    { name: 'dgamma', access: 'read' },
    { name: 'dx', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= P.n) { return; }
  let c = i % P.C;
  let s = gamma[c] * invstd[c];
  if (P.train == 1u) {
    let xhat = (x[i] - mean[c]) * invstd[c];
    dx[i] = s / P.R * (P.R * dy[i] - dbeta[c] - xhat * dgamma[c]);
  } else {
    dx[i] = s * dy[i];
  }
}`,
};

function perChannelChunks(
  eng: Engine,
  x: Tensor,
  C: number,
  run: (start: number, count: number) => void,
): void {
  for (const c of eng.chunks(x.size / C, C)) run(c.start * C, c.count * C);
}

// ---- forward
export function batchNorm(x: Tensor, bn: BatchNormState, training: boolean): Tensor {
  const eng = x.engine;
  const C = x.shape.at(-1) as number;
  for (const t of [bn.weight, bn.bias, bn.runningMean, bn.runningVar]) {
    if (t.size !== C)
      throw new Error(
        `batchNorm: parameter ${shapeString(t.shape)} for ${C} channels of ${shapeString(x.shape)}`,
      );
  }
  const R = x.size / C;
  let mean: Tensor;
  let variance: Tensor;
  if (training) {
    if (R < 2)
      throw new Error(
        `batchNorm: training needs more than one value per channel, got ${shapeString(x.shape)}`,
      );
    mean = reduceRows(x, { B: 1, R, C, scale: 1 / R, shape: [C] });
    variance = reduceRows(x, {
      B: 1,
      R,
      C,
      p1: mean,
      expr: '(xv - p1v) * (xv - p1v)',
      scale: 1 / R,
      shape: [C],
    });
  } else {
    mean = bn.runningMean;
    variance = bn.runningVar;
  }
  const invstd = eng.empty([C]);
  const placeholderA = eng.empty([1]);
  const placeholderB = eng.empty([1]);
  eng.dispatch(
    STATS,
    training
      ? [mean.range(), variance.range(), invstd.range(), bn.runningMean.range(), bn.runningVar.range()]
      : // In eval mode mean/variance are the running buffers themselves: bind placeholders for writing.
        [mean.range(), variance.range(), invstd.range(), placeholderA.range(), placeholderB.range()],
    { C, train: training ? 1 : 0, eps: bn.eps, momentum: bn.momentum, unbias: R / Math.max(1, R - 1) },
    [Math.ceil(C / 64)],
  );
  placeholderA.dispose();
  placeholderB.dispose();
  const y = eng.empty(x.shape);
  perChannelChunks(eng, x, C, (s, n) =>
    eng.dispatch(
      APPLY,
      [x.slice(s, n), mean.range(), invstd.range(), bn.weight.range(), bn.bias.range(), y.slice(s, n)],
      { n, C },
      grid1d(eng, n),
    ),
  );
  // Batch statistics are saved for backward; in eval mode the running ones are (they do not change
  // before backward within a step).
  eng.record('batchNorm', [x, bn.weight, bn.bias], y, [mean, invstd], (dy, needs) =>
    batchNormGrad(dy, x, bn, mean, invstd, training, needs),
  );
  if (training) variance.dispose();
  return y;
}

// ---- gradient
function batchNormGrad(
  dy: Tensor,
  x: Tensor,
  bn: BatchNormState,
  mean: Tensor,
  invstd: Tensor,
  training: boolean,
  needs: boolean[],
): (Tensor | undefined)[] {
  const eng = dy.engine;
  const C = x.shape.at(-1) as number;
  const R = x.size / C;
  const dbeta = reduceRows(dy, { B: 1, R, C, shape: [C] });
  const dgamma = reduceRows(dy, {
    B: 1,
    R,
    C,
    z: x,
    p1: mean,
    p2: invstd,
    expr: 'xv * (zv - p1v) * p2v',
    shape: [C],
  });
  let dx: Tensor | undefined;
  if (needs[0]) {
    const out = eng.empty(x.shape);
    perChannelChunks(eng, x, C, (s, n) =>
      eng.dispatch(
        INPUT_GRAD,
        [
          dy.slice(s, n),
          x.slice(s, n),
          mean.range(),
          invstd.range(),
          bn.weight.range(),
          dbeta.range(),
          dgamma.range(),
          out.slice(s, n),
        ],
        { n, C, train: training ? 1 : 0, R },
        grid1d(eng, n),
      ),
    );
    dx = out;
  }
  return [dx, needs[1] ? dgamma : undefined, needs[2] ? dbeta : undefined];
}
