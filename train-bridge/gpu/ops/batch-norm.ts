// batchNorm(x, bn, training) over the last (channel) dim of NHWC x: training mode normalises with the
// batch's statistics over N·H·W (two-pass mean/variance) and updates the running statistics in place
// (PyTorch's momentum convention, unbiased running variance); eval mode uses the running statistics.
import type { Engine } from '../engine.ts';
import { type KernelDef, type StorageBinding, storeOrAdd } from '../kernel.ts';
import { grid1d } from '../kernels/elementwise.ts';
import { minRowsPerBlock, reduceRows } from '../kernels/reduce-rows.ts';
import type { BufferRange } from '../pipeline-cache.ts';
import { shapeString, type Tensor } from '../tensor.ts';
import { add } from './add.ts';

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

/**
 * The per-element kernels (apply, input gradient) in f32 and, for C divisible by 4, vec4 form: four channels
 * a thread (lavapipe's per-invocation cost dominates these; same per-lane arithmetic, identical results).
 */
interface Widths {
  f32: KernelDef;
  vec4: KernelDef;
}
function widths(make: (type: string, wg: number, suffix: string) => KernelDef): Widths {
  return { f32: make('f32', 256, ''), vec4: make('vec4<f32>', 64, '_v4') };
}
function dispatchPerElement(
  eng: Engine,
  k: Widths,
  ranges: BufferRange[],
  n: number,
  C: number,
  u: Record<string, number>,
): void {
  const v4 = C % 4 === 0;
  const per = v4 ? 4 : 1;
  eng.dispatch(
    v4 ? k.vec4 : k.f32,
    ranges,
    { ...u, n: n / per, C: C / per },
    grid1d(eng, n / per, v4 ? 64 : 256),
  );
}

/** y = (x − mean[c])·invstd[c]·γ[c] + β[c] */
const APPLY = widths((type, wg, suffix) => ({
  name: `batch_norm_apply${suffix}`,
  uniforms: ['n', 'C'],
  storage: ['x', 'mean', 'invstd', 'gamma', 'beta']
    .map((name): StorageBinding => ({ name, access: 'read', type }))
    .concat([{ name: 'y', access: 'read_write', type }]),
  body: /* wgsl */ `
@compute @workgroup_size(${wg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * ${wg}u + li;
  if (i >= P.n) { return; }
  let c = i % P.C;
  y[i] = (x[i] - mean[c]) * invstd[c] * gamma[c] + beta[c];
}`,
}));

/** The backward kernels' bindings; the fused one writes the per-channel sums the other reads. */
function gradStorage(sums: 'read' | 'read_write', type = 'f32'): StorageBinding[] {
  return [
    ...['dy', 'x', 'mean', 'invstd', 'gamma'].map((name) => ({ name, access: 'read' as const, type })),
    { name: 'dbeta', access: sums, type },
    { name: 'dgamma', access: sums, type },
    { name: 'dx', access: 'read_write', type },
  ];
}

/** Training: dx = γ·invstd/R·(R·dy − Σdy − x̂·Σdy·x̂); eval: dx = γ·invstd·dy. */
const INPUT_GRAD = widths((type, wg, suffix) => ({
  name: `batch_norm_dx${suffix}`,
  uniforms: ['n', 'C', 'train', 'R:f32'],
  storage: gradStorage('read', type),
  body: /* wgsl */ `
@compute @workgroup_size(${wg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * ${wg}u + li;
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
}));

/**
 * Training-mode forward in one dispatch, for tensors whose reduction is one block of rows anyway (small
 * maps on CPU adapters, where each dispatch costs more than these loops): a lane per channel walks the rows
 * three times — Σx, Σ(x − mean)², then y — and folds the statistics into the running ones in between. The
 * sums run in the same order as reduceRows' single-block pass, so the numbers are those of the 4-dispatch
 * path (mean, variance, stats, apply).
 */
function fusedTrainDef(addend: boolean): KernelDef {
  return {
    name: `batch_norm_train_fused${addend ? '_add' : ''}`,
    uniforms: ['C', 'R', 'invR:f32', 'eps:f32', 'momentum:f32', 'unbias:f32'],
    storage: [
      { name: 'x', access: 'read' },
      { name: 'gamma', access: 'read' },
      { name: 'beta', access: 'read' },
      { name: 'meanOut', access: 'read_write' },
      { name: 'invstdOut', access: 'read_write' },
      { name: 'runMean', access: 'read_write' },
      { name: 'runVar', access: 'read_write' },
      ...(addend ? [{ name: 'addend', access: 'read' as const }] : []),
      { name: 'y', access: 'read_write' },
    ],
    body: /* wgsl */ `
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= P.C) { return; }
  var acc = 0.0;
  for (var r = 0u; r < P.R; r++) { acc += x[r * P.C + c]; }
  let mean = acc * P.invR;
  var acc2 = 0.0;
  for (var r = 0u; r < P.R; r++) { let d = x[r * P.C + c] - mean; acc2 += d * d; }
  let variance = acc2 * P.invR;
  let invstd = inverseSqrt(variance + P.eps);
  meanOut[c] = mean;
  invstdOut[c] = invstd;
  runMean[c] = (1.0 - P.momentum) * runMean[c] + P.momentum * mean;
  runVar[c] = (1.0 - P.momentum) * runVar[c] + P.momentum * variance * P.unbias;
  let g = gamma[c];
  let b = beta[c];
  for (var r = 0u; r < P.R; r++) { let i = r * P.C + c; y[i] = ${addend ? 'addend[i] + ' : ''}((x[i] - mean) * invstd * g + b); }
}`,
  };
}
const FUSED_TRAIN = fusedTrainDef(false);
/** The same, with a second operand added to the output (a block's branch sum ends in a BN: one dispatch less). */
const FUSED_TRAIN_ADD = fusedTrainDef(true);

/**
 * Training-mode backward in one dispatch (same condition): Σdy and Σdy·x̂ per lane, then dx, or dx added
 * into the gradient already there (`acc`, the tape's sum without its dispatch).
 */
const FUSED_TRAIN_GRAD: KernelDef = {
  name: 'batch_norm_train_grad_fused',
  uniforms: ['C', 'R', 'Rf:f32', 'acc'],
  storage: gradStorage('read_write'),
  body: /* wgsl */ `
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= P.C) { return; }
  let m = mean[c];
  let is = invstd[c];
  var sb = 0.0;
  var sg = 0.0;
  for (var r = 0u; r < P.R; r++) {
    let i = r * P.C + c;
    let d = dy[i];
    sb += d;
    sg += d * (x[i] - m) * is;
  }
  dbeta[c] = sb;
  dgamma[c] = sg;
  let s = gamma[c] * is;
  for (var r = 0u; r < P.R; r++) {
    let i = r * P.C + c;
    let xhat = (x[i] - m) * is;
    let v = s / P.Rf * (P.Rf * dy[i] - sb - xhat * sg);
    ${storeOrAdd('dx[i]', 'v')}
  }
}`,
};

/** Whether the one-dispatch training kernels apply: one block of rows, the whole tensor in one binding. */
function fusedTraining(eng: Engine, x: Tensor, C: number): boolean {
  return x.size / C <= minRowsPerBlock(eng, C) && x.size * 4 <= eng.maxBindingBytes;
}

function perChannelChunks(
  eng: Engine,
  x: Tensor,
  C: number,
  run: (start: number, count: number) => void,
): void {
  for (const c of eng.chunks(x.size / C, C)) run(c.start * C, c.count * C);
}

// ---- forward
/** BatchNorm of x, plus `addend` (x's shape) when given: in one dispatch where the fused training kernel runs. */
export function batchNorm(x: Tensor, bn: BatchNormState, training: boolean, addend?: Tensor): Tensor {
  const eng = x.engine;
  const C = x.shape.at(-1) as number;
  if (addend && (addend.size !== x.size || addend.shape.some((d, i) => d !== x.shape[i])))
    throw new Error(`batchNorm: addend ${shapeString(addend.shape)} for x ${shapeString(x.shape)}`);
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
    if (fusedTraining(eng, x, C)) return batchNormTrainFused(x, bn, C, R, addend);
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
    dispatchPerElement(
      eng,
      APPLY,
      [x.slice(s, n), mean.range(), invstd.range(), bn.weight.range(), bn.bias.range(), y.slice(s, n)],
      n,
      C,
      {},
    ),
  );
  // Batch statistics are saved for backward; in eval mode the running ones are (they do not change
  // before backward within a step).
  eng.record('batchNorm', [x, bn.weight, bn.bias], y, [mean, invstd], (dy, needs) =>
    batchNormGrad(dy, x, bn, mean, invstd, training, needs),
  );
  if (training) variance.dispose();
  return addend ? add(addend, y) : y;
}

function batchNormTrainFused(x: Tensor, bn: BatchNormState, C: number, R: number, addend?: Tensor): Tensor {
  const eng = x.engine;
  const mean = eng.empty([C]);
  const invstd = eng.empty([C]);
  const y = eng.empty(x.shape);
  eng.dispatch(
    addend ? FUSED_TRAIN_ADD : FUSED_TRAIN,
    [
      x.range(),
      bn.weight.range(),
      bn.bias.range(),
      mean.range(),
      invstd.range(),
      bn.runningMean.range(),
      bn.runningVar.range(),
      ...(addend ? [addend.range()] : []),
      y.range(),
    ],
    { C, R, invR: 1 / R, eps: bn.eps, momentum: bn.momentum, unbias: R / Math.max(1, R - 1) },
    [Math.ceil(C / 64)],
  );
  // The addend's gradient is dy itself, as add's.
  const inputs = addend ? [x, bn.weight, bn.bias, addend] : [x, bn.weight, bn.bias];
  eng.record('batchNorm', inputs, y, [mean, invstd], (dy, needs, into) => [
    ...batchNormGrad(dy, x, bn, mean, invstd, true, needs, into[0]),
    ...(addend && needs[3] ? [dy] : []),
  ]);
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
  into?: Tensor,
): (Tensor | undefined)[] {
  const eng = dy.engine;
  const C = x.shape.at(-1) as number;
  const R = x.size / C;
  if (training && needs[0] && fusedTraining(eng, x, C)) {
    const dbeta = eng.empty([C]);
    const dgamma = eng.empty([C]);
    const dx = into ?? eng.empty(x.shape);
    eng.dispatch(
      FUSED_TRAIN_GRAD,
      [
        dy.range(),
        x.range(),
        mean.range(),
        invstd.range(),
        bn.weight.range(),
        dbeta.range(),
        dgamma.range(),
        dx.range(),
      ],
      { C, R, Rf: R, acc: into ? 1 : 0 },
      [Math.ceil(C / 64)],
    );
    // The unneeded ones are disposed by the tape's tidy scope like any unreturned tensor.
    return [dx, needs[1] ? dgamma : undefined, needs[2] ? dbeta : undefined];
  }
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
      dispatchPerElement(
        eng,
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
        n,
        C,
        { train: training ? 1 : 0, R },
      ),
    );
    dx = out;
  }
  return [dx, needs[1] ? dgamma : undefined, needs[2] ? dbeta : undefined];
}
