// Runs every op forward and backward on random shapes (sizes off every tile multiple) on the GPU and
// compares with an independent reference: TensorFlow.js's CPU backend (values and gradients through
// tf.grads), or plain CPU code for the optimiser. A second pass on an engine whose storage bindings are
// limited to 128 KiB drives the chunked paths of large tensors.
import type * as TF from '@tensorflow/tfjs';
import { Engine, type EngineOptions } from './engine.ts';
import { forceGemmKernel, gemmKernels } from './gemm/registry.ts';
import * as ops from './ops/index.ts';
import { AdamW } from './optim/adamw.ts';
import { clipGradNorm } from './optim/clip-grad-norm.ts';
import type { Tensor } from './tensor.ts';

type Tf = typeof TF;

export interface SelftestResult {
  op: string;
  case: string;
  /** Max abs error of the output and of every gradient; rel = abs / max |reference|. */
  maxAbs: number;
  maxRel: number;
  worst: string;
  pass: boolean;
  error?: string;
}

export interface SelftestReport {
  adapter: string;
  results: SelftestResult[];
  pass: boolean;
  seconds: number;
}

interface InputSpec {
  shape: number[];
  /** Needs a gradient (uploaded as a parameter). */
  grad?: boolean;
  init?: 'normal' | 'positive' | 'small';
}

interface Case {
  op: string;
  name: string;
  inputs: InputSpec[];
  gpu: (x: Tensor[]) => Tensor;
  ref: (tf: Tf, x: TF.Tensor[]) => TF.Tensor;
  tol?: number;
  /** Run on the small-binding engine too (inputs sized past 128 KiB there). */
  chunked?: boolean;
}

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomData(r: () => number, n: number, init: InputSpec['init']): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
    out[i] = init === 'positive' ? 0.5 + r() : init === 'small' ? 0.1 * g : g;
  }
  return out;
}

function pad(tf: Tf, x: TF.Tensor, p: number): TF.Tensor4D {
  return tf.pad(x as TF.Tensor4D, [
    [0, 0],
    [p, p],
    [p, p],
    [0, 0],
  ]);
}

/** Grouped conv in TF.js (HWIO weights, our channel grouping) built from conv2d / depthwiseConv2d. */
function refConv(tf: Tf, x: TF.Tensor, w: TF.Tensor, stride: number, p: number, groups: number): TF.Tensor {
  const xp = pad(tf, x, p);
  const [KH, KW, Cg, Cout] = w.shape as [number, number, number, number];
  const Cin = x.shape[3] as number;
  if (groups === 1) return tf.conv2d(xp, w as TF.Tensor4D, stride, 'valid');
  if (groups === Cin && Cg === 1) {
    return tf.depthwiseConv2d(xp, tf.reshape(w, [KH, KW, Cin, Cout / Cin]) as TF.Tensor4D, stride, 'valid');
  }
  const xs = tf.split(xp, groups, 3);
  const ws = tf.split(w as TF.Tensor4D, groups, 3);
  return tf.concat(
    xs.map((xi, i) => tf.conv2d(xi as TF.Tensor4D, ws[i] as TF.Tensor4D, stride, 'valid')),
    3,
  );
}

function erfGelu(tf: Tf, x: TF.Tensor): TF.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
}

/** x, then γ (positive) and β over its last dim: the inputs of a normalisation with an affine part. */
function normInputs(xs: number[]): InputSpec[] {
  const C = xs.at(-1) as number;
  return [
    { shape: xs, grad: true },
    { shape: [C], grad: true, init: 'positive' },
    { shape: [C], grad: true },
  ];
}

/** (x − mean) / √(variance + 1e-5) · γ + β with the moments over `axes` (BatchNorm train, LayerNorm). */
function refNorm(
  tf: Tf,
  x: TF.Tensor,
  g: TF.Tensor,
  b: TF.Tensor,
  axes: number[],
  keepDims = false,
): TF.Tensor {
  const { mean, variance } = tf.moments(x, axes, keepDims);
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b);
}

function cases(): Case[] {
  const conv = (
    name: string,
    xs: number[],
    ws: number[],
    stride: number,
    padding: number,
    groups: number,
    chunked = false,
  ): Case => ({
    op: 'conv2d',
    name,
    inputs: [
      { shape: xs, grad: true },
      { shape: ws, grad: true, init: 'small' },
    ],
    gpu: ([x, w]) => ops.conv2d(x as Tensor, w as Tensor, { stride, padding, groups }),
    ref: (tf, [x, w]) => refConv(tf, x as TF.Tensor, w as TF.Tensor, stride, padding, groups),
    chunked,
  });
  // Ops whose TF.js function has the same name and arguments; every input takes a gradient.
  const sameAsTf = {
    add: ops.add,
    sub: ops.sub,
    mul: ops.mul,
    relu: ops.relu,
    sigmoid: ops.sigmoid,
    softmax: ops.softmax,
  };
  const likeTf = (op: keyof typeof sameAsTf, name: string, ...shapes: number[][]): Case => ({
    op,
    name,
    inputs: shapes.map((shape) => ({ shape, grad: true })),
    gpu: (xs) => (sameAsTf[op] as (...a: Tensor[]) => Tensor)(...xs),
    ref: (tf, xs) => (tf[op] as (...a: TF.Tensor[]) => TF.Tensor)(...xs),
  });
  const bnTrain = (name: string, xs: number[], chunked = false): Case => ({
    op: 'batchNorm',
    name,
    inputs: normInputs(xs),
    gpu: ([x, g, b]) => ops.batchNorm(x as Tensor, bnState(x as Tensor, g as Tensor, b as Tensor), true),
    ref: (tf, [x, g, b]) => refNorm(tf, x as TF.Tensor, g as TF.Tensor, b as TF.Tensor, [0, 1, 2]),
    chunked,
  });
  const embedIds = Int32Array.from([3, 7, -1, 3, 0, 19, 19, 5, -1, -1, -1, -1, 11, 2, 8, 3]);
  const bagWeights = (tf: Tf, V: number) => {
    const W = new Float32Array((embedIds.length / 4) * V);
    for (let b = 0; b < embedIds.length / 4; b++) {
      const ids = [...embedIds.slice(b * 4, b * 4 + 4)].filter((i) => i >= 0);
      for (const id of ids) W[b * V + id] = (W[b * V + id] as number) + 1 / ids.length;
    }
    return tf.tensor2d(W, [embedIds.length / 4, V]);
  };
  return [
    // elementwise
    likeTf('add', '[3,5,7,11]+[11]', [3, 5, 7, 11], [11]),
    { ...likeTf('add', 'same shape, large', [40013], [40013]), chunked: true },
    likeTf('sub', '[4,9,13]-[9,13]', [4, 9, 13], [9, 13]),
    { ...likeTf('mul', 'layer scale [2,6,5,40003/…]·[37]', [2, 29, 31, 37], [37]), chunked: true },
    likeTf('mul', 'scalar [1]', [7, 9], [1]),
    {
      op: 'scale',
      name: '×(−2.5)',
      inputs: [{ shape: [5, 19], grad: true }],
      gpu: ([a]) => ops.scale(a as Tensor, -2.5),
      ref: (tf, [a]) => tf.mul(a as TF.Tensor, -2.5),
    },
    {
      op: 'gelu',
      name: 'erf form',
      inputs: [{ shape: [3, 7, 5, 13], grad: true }],
      gpu: ([a]) => ops.gelu(a as Tensor),
      ref: (tf, [a]) => erfGelu(tf, a as TF.Tensor),
    },
    likeTf('relu', '[301]', [301]),
    likeTf('sigmoid', '[17,23]', [17, 23]),
    {
      op: 'exp',
      name: '[2,33]',
      inputs: [{ shape: [2, 33], grad: true, init: 'small' }],
      gpu: ([a]) => ops.exp(a as Tensor),
      ref: (tf, [a]) => tf.exp(a as TF.Tensor),
    },
    // GEMM
    ...[false, true].flatMap((tA) =>
      [false, true].map(
        (tB): Case => ({
          op: 'matmul',
          name: `67×33·33×70 ${tA ? 'T' : 'N'}${tB ? 'T' : 'N'}`,
          inputs: [
            { shape: tA ? [33, 67] : [67, 33], grad: true },
            { shape: tB ? [70, 33] : [33, 70], grad: true },
          ],
          gpu: ([a, b]) => ops.matmul(a as Tensor, b as Tensor, { transA: tA, transB: tB, alpha: 0.75 }),
          ref: (tf, [a, b]) => tf.mul(tf.matMul(a as TF.Tensor2D, b as TF.Tensor2D, tA, tB), 0.75),
        }),
      ),
    ),
    {
      op: 'matmul',
      name: 'batched [3,17,29]·[3,29,13]',
      inputs: [
        { shape: [3, 17, 29], grad: true },
        { shape: [3, 29, 13], grad: true },
      ],
      gpu: ([a, b]) => ops.matmul(a as Tensor, b as Tensor),
      ref: (tf, [a, b]) => tf.matMul(a as TF.Tensor3D, b as TF.Tensor3D),
    },
    {
      op: 'matmul',
      name: 'shared b [2,37,19]·[19,23]ᵀ',
      inputs: [
        { shape: [2, 37, 19], grad: true },
        { shape: [23, 19], grad: true },
      ],
      gpu: ([a, b]) => ops.matmul(a as Tensor, b as Tensor, { transB: true }),
      ref: (tf, [a, b]) =>
        tf.reshape(
          tf.matMul(tf.reshape(a as TF.Tensor, [74, 19]), b as TF.Tensor2D, false, true),
          [2, 37, 23],
        ),
    },
    {
      op: 'matmul',
      name: 'split-K 9×2500·2500×13',
      inputs: [
        { shape: [2500, 9], grad: true },
        { shape: [2500, 13], grad: true },
      ],
      gpu: ([a, b]) => ops.matmul(a as Tensor, b as Tensor, { transA: true }),
      ref: (tf, [a, b]) => tf.matMul(a as TF.Tensor2D, b as TF.Tensor2D, true, false),
      tol: 1e-3,
    },
    {
      op: 'linear',
      name: 'NHWC 1×1 [2,41,23,24]→40 (chunked rows)',
      inputs: [
        { shape: [2, 41, 23, 24], grad: true },
        { shape: [24, 40], grad: true, init: 'small' },
        { shape: [40], grad: true },
      ],
      gpu: ([x, w, b]) => ops.linear(x as Tensor, w as Tensor, b as Tensor),
      ref: (tf, [x, w, b]) =>
        tf.reshape(
          tf.add(tf.matMul(tf.reshape(x as TF.Tensor, [-1, 24]), w as TF.Tensor2D), b as TF.Tensor),
          [2, 41, 23, 40],
        ),
      chunked: true,
    },
    // convolution
    conv('dense 3×3 s2 p1 (stem)', [2, 9, 11, 3], [3, 3, 3, 8], 2, 1, 1),
    conv('pointwise 1×1', [2, 5, 6, 12], [1, 1, 12, 20], 1, 0, 1),
    conv('1×1 s2 (scale branch)', [2, 7, 9, 5], [1, 1, 5, 6], 2, 0, 1),
    conv('grouped g=2 3×3 p1', [1, 6, 7, 6], [3, 3, 3, 10], 1, 1, 2),
    conv('grouped 1×1 g=3', [2, 4, 5, 9], [1, 1, 3, 6], 1, 0, 3),
    conv('depthwise 3×3 s1 p1', [2, 9, 10, 10], [3, 3, 1, 10], 1, 1, 10),
    conv('depthwise 1×1 (mixer scale)', [2, 5, 7, 6], [1, 1, 1, 6], 1, 0, 6),
    conv('depthwise 3×3 s2 p1 ×2 (conv_exp)', [2, 9, 7, 5], [3, 3, 1, 10], 2, 1, 5),
    conv('depthwise 7×7 s1 p3 (ConvFFN)', [2, 11, 13, 7], [7, 7, 1, 7], 1, 3, 7),
    conv('depthwise 7×7 s2 p3 ×2 (embed)', [2, 15, 13, 6], [7, 7, 1, 12], 2, 3, 6),
    // The input gradient runs the forward's strip kernel on rotated weights: padding k−1−p ≠ p, widths
    // not a multiple of the strip.
    conv('depthwise 7×7 s1 p1 (shrinks)', [1, 12, 19, 9], [7, 7, 1, 9], 1, 1, 9),
    conv('depthwise 5×5 s1 p0 (valid)', [2, 9, 21, 4], [5, 5, 1, 4], 1, 0, 4),
    conv('depthwise 7×7 (chunked images)', [8, 16, 16, 24], [7, 7, 1, 24], 1, 3, 24, true),
    conv('dense 3×3 (chunked images)', [6, 12, 12, 8], [3, 3, 8, 16], 1, 1, 1, true),
    // normalisation
    bnTrain('train [2,7,9,13]', [2, 7, 9, 13]),
    bnTrain('train (chunked) [8,16,16,24]', [8, 16, 16, 24], true),
    {
      op: 'batchNorm',
      name: 'eval (running stats 0.25 / 2)',
      inputs: normInputs([3, 5, 4, 9]),
      gpu: ([x, g, b]) => {
        const eng = (x as Tensor).engine;
        const st = bnState(x as Tensor, g as Tensor, b as Tensor);
        st.runningMean = eng.fill([9], 0.25);
        st.runningVar = eng.fill([9], 2);
        return ops.batchNorm(x as Tensor, st, false);
      },
      ref: (tf, [x, g, b]) =>
        tf.add(
          tf.mul(tf.div(tf.sub(x as TF.Tensor, 0.25), Math.sqrt(2 + 1e-5)), g as TF.Tensor),
          b as TF.Tensor,
        ),
    },
    {
      op: 'layerNormChannel',
      name: '[2,5,3,70]',
      inputs: normInputs([2, 5, 3, 70]),
      gpu: ([x, g, b]) => ops.layerNormChannel(x as Tensor, g as Tensor, b as Tensor, 1e-5),
      ref: (tf, [x, g, b]) => refNorm(tf, x as TF.Tensor, g as TF.Tensor, b as TF.Tensor, [3], true),
    },
    // pooling and reductions
    {
      op: 'avgPool2d',
      name: 'k3 s1 p1 (count excludes padding)',
      inputs: [{ shape: [2, 7, 6, 5], grad: true }],
      gpu: ([x]) => ops.avgPool2d(x as Tensor, { kernel: 3, stride: 1, padding: 1 }),
      // tfjs's own avgPool gradient divides by k² even where its forward excluded padding, so the
      // reference is built from ops: a sum over the window (depthwise conv with ones) / real-pixel count.
      ref: (tf, [x]) => {
        const [, H, W, C] = (x as TF.Tensor).shape as number[];
        const sums = tf.depthwiseConv2d(
          pad(tf, x as TF.Tensor, 1),
          tf.ones([3, 3, C as number, 1]) as TF.Tensor4D,
          1,
          'valid',
        );
        const counts = tf.depthwiseConv2d(
          pad(tf, tf.ones([1, H as number, W as number, 1]), 1),
          tf.ones([3, 3, 1, 1]) as TF.Tensor4D,
          1,
          'valid',
        );
        return tf.div(sums, counts);
      },
    },
    {
      op: 'avgPool2d',
      name: 'k2 s2',
      inputs: [{ shape: [2, 8, 10, 3], grad: true }],
      gpu: ([x]) => ops.avgPool2d(x as Tensor, { kernel: 2, stride: 2 }),
      ref: (tf, [x]) => tf.avgPool(x as TF.Tensor4D, 2, 2, 'valid'),
    },
    {
      op: 'meanSpatial',
      name: '[3,5,7,19]',
      inputs: [{ shape: [3, 5, 7, 19], grad: true }],
      gpu: ([x]) => ops.meanSpatial(x as Tensor),
      ref: (tf, [x]) => tf.mean(x as TF.Tensor, [1, 2]),
    },
    {
      op: 'sum',
      name: '[4001]',
      inputs: [{ shape: [4001], grad: true }],
      gpu: ([x]) => ops.sum(x as Tensor),
      ref: (tf, [x]) => tf.reshape(tf.sum(x as TF.Tensor), [1]),
    },
    {
      op: 'mean',
      name: '[7,11,13] (chunked)',
      inputs: [{ shape: [70, 11, 53], grad: true }],
      gpu: ([x]) => ops.mean(x as Tensor),
      ref: (tf, [x]) => tf.reshape(tf.mean(x as TF.Tensor), [1]),
      chunked: true,
    },
    likeTf('softmax', '[6,9,131]', [6, 9, 131]),
    {
      op: 'attention',
      name: '[4,13,8] (heads folded)',
      inputs: [
        { shape: [4, 13, 8], grad: true },
        { shape: [4, 13, 8], grad: true },
        { shape: [4, 13, 8], grad: true },
      ],
      gpu: ([q, k, v]) => ops.attention(q as Tensor, k as Tensor, v as Tensor),
      ref: (tf, [q, k, v]) =>
        tf.matMul(
          tf.softmax(tf.mul(tf.matMul(q as TF.Tensor3D, k as TF.Tensor3D, false, true), 1 / Math.sqrt(8))),
          v as TF.Tensor3D,
        ),
    },
    {
      op: 'permute',
      name: '[2,3,4,5] → (0,2,3,1)',
      inputs: [{ shape: [2, 3, 4, 5], grad: true }],
      gpu: ([x]) => ops.permute(x as Tensor, [0, 2, 3, 1]),
      ref: (tf, [x]) => tf.transpose(x as TF.Tensor, [0, 2, 3, 1]),
    },
    {
      op: 'reshape',
      name: '[6,10] → [3,−1] then gelu',
      inputs: [{ shape: [6, 10], grad: true }],
      gpu: ([x]) => ops.gelu(ops.reshape(x as Tensor, [3, -1])),
      ref: (tf, [x]) => erfGelu(tf, tf.reshape(x as TF.Tensor, [3, 20])),
    },
    // losses
    {
      op: 'sigmoidContrastiveLoss',
      name: 'N=6, D=8',
      inputs: [
        { shape: [6, 8], grad: true },
        { shape: [6, 8], grad: true },
        { shape: [1], grad: true, init: 'positive' },
        { shape: [1], grad: true },
      ],
      gpu: ([i, t, s, b]) => ops.sigmoidContrastiveLoss(i as Tensor, t as Tensor, s as Tensor, b as Tensor),
      ref: (tf, [i, t, s, b]) => {
        const z = tf.add(
          tf.mul(tf.matMul(i as TF.Tensor2D, t as TF.Tensor2D, false, true), s as TF.Tensor),
          b as TF.Tensor,
        );
        const labels = tf.tensor2d(
          Array.from({ length: 36 }, (_, k) => (Math.floor(k / 6) === k % 6 ? 1 : -1)),
          [6, 6],
        );
        // log σ(u) = −softplus(−u); tf.logSigmoid's own gradient fails inside tf.grads (tfjs 4.22).
        return tf.reshape(tf.mul(tf.sum(tf.softplus(tf.neg(tf.mul(labels, z)))), 1 / 6), [1]);
      },
    },
    {
      op: 'embeddingBag',
      name: 'V=20 D=7, bags of 4 with padding',
      inputs: [{ shape: [20, 7], grad: true }],
      gpu: ([t]) => ops.embeddingBag(t as Tensor, embedIds, 4),
      ref: (tf, [t]) => tf.matMul(bagWeights(tf, 20), t as TF.Tensor2D),
    },
  ];
}

function bnState(x: Tensor, weight: Tensor, bias: Tensor): ops.BatchNormState {
  const eng = x.engine;
  const C = x.shape.at(-1) as number;
  return {
    weight,
    bias,
    runningMean: eng.zeros([C]),
    runningVar: eng.fill([C], 1),
    momentum: 0.1,
    eps: 1e-5,
  };
}

function compare(
  got: Float32Array,
  want: Float32Array | Int32Array | Uint8Array,
): { abs: number; rel: number } {
  let abs = 0;
  let scale = 0;
  if (got.length !== want.length) return { abs: Infinity, rel: Infinity };
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs((got[i] as number) - (want[i] as number));
    abs = Number.isNaN(d) ? Infinity : Math.max(abs, d);
    scale = Math.max(scale, Math.abs(want[i] as number));
  }
  return { abs, rel: abs / Math.max(scale, 1e-6) };
}

function randomInputs(r: () => number, c: Case): Float32Array[] {
  return c.inputs.map((s) =>
    randomData(
      r,
      s.shape.reduce((a, b) => a * b, 1),
      s.init,
    ),
  );
}

/** A result from one comparison (those without gradients: the optimiser and forward-only checks). */
function checked(
  op: string,
  name: string,
  e: { abs: number; rel: number },
  worst: string,
  tol: number,
): SelftestResult {
  return { op, case: name, maxAbs: e.abs, maxRel: e.rel, worst, pass: e.rel <= tol };
}

async function runCase(eng: Engine, tf: Tf, c: Case, seed: number): Promise<SelftestResult> {
  const r = rng(seed);
  const data = randomInputs(r, c);
  const tol = c.tol ?? 2e-4;
  const made: Tensor[] = [];
  try {
    const xs = c.inputs.map((s, i) => {
      const t = s.grad
        ? eng.parameter(data[i] as Float32Array, s.shape)
        : eng.upload(data[i] as Float32Array, s.shape);
      made.push(t);
      return t;
    });
    const y = eng.tidy(() => c.gpu(xs));
    made.push(y);
    const dyData = randomData(r, y.size, 'normal');
    const dy = eng.upload(dyData, y.shape);
    made.push(dy);
    eng.backward(y, dy);
    const got = [await y.read()];
    for (const x of xs) got.push(x.grad ? await x.grad.read() : new Float32Array(x.size));
    // Reference
    const want = tf.tidy(() => {
      const txs = c.inputs.map((s, i) => tf.tensor(data[i] as Float32Array, s.shape));
      const ty = c.ref(tf, txs);
      const grads = tf.grads((...a: TF.Tensor[]) => c.ref(tf, a))(txs, tf.tensor(dyData, ty.shape));
      return [ty, ...grads].map((t) => t.dataSync() as Float32Array);
    });
    let maxAbs = 0;
    let maxRel = 0;
    let worst = 'output';
    const names = ['output', ...c.inputs.map((_, i) => `grad[${i}]`)];
    got.forEach((g, i) => {
      const e = compare(g, want[i] as Float32Array);
      maxAbs = Math.max(maxAbs, e.abs);
      if (e.rel >= maxRel) {
        maxRel = e.rel;
        worst = names[i] as string;
      }
    });
    return { op: c.op, case: c.name, maxAbs, maxRel, worst, pass: maxRel <= tol };
  } catch (err) {
    eng.clearTape();
    return {
      op: c.op,
      case: c.name,
      maxAbs: Infinity,
      maxRel: Infinity,
      worst: '-',
      pass: false,
      error: (err as Error).message,
    };
  } finally {
    for (const t of made) {
      t.grad?.dispose();
      t.dispose();
    }
  }
}

/** AdamW and gradient clipping against plain CPU arithmetic over three steps. */
async function optimiserCases(eng: Engine): Promise<SelftestResult[]> {
  const r = rng(99);
  const n = 1031;
  const p0 = randomData(r, n, 'normal');
  const grads = [0, 1, 2].map(() => randomData(r, n, 'normal'));
  const o = { lr: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  const maxNorm = 5;
  // CPU reference
  const p = Float64Array.from(p0);
  const m = new Float64Array(n);
  const v = new Float64Array(n);
  const norms: number[] = [];
  grads.forEach((g, s) => {
    const norm = Math.sqrt(g.reduce((a, x) => a + x * x, 0));
    norms.push(norm);
    const f = Math.min(1, maxNorm / (norm + 1e-6));
    for (let i = 0; i < n; i++) {
      const gi = (g[i] as number) * f;
      m[i] = o.beta1 * (m[i] as number) + (1 - o.beta1) * gi;
      v[i] = o.beta2 * (v[i] as number) + (1 - o.beta2) * gi * gi;
      const mh = (m[i] as number) / (1 - o.beta1 ** (s + 1));
      const vh = (v[i] as number) / (1 - o.beta2 ** (s + 1));
      p[i] = (p[i] as number) * (1 - o.lr * o.weightDecay) - (o.lr * mh) / (Math.sqrt(vh) + o.eps);
    }
  });
  const param = eng.parameter(p0, [n]);
  const opt = new AdamW([param], o);
  const gotNorms: number[] = [];
  for (const g of grads) {
    eng.zeroGrad([param]);
    param.grad = eng.keep(eng.upload(g, [n]));
    const norm = clipGradNorm([param], maxNorm);
    opt.step();
    gotNorms.push(((await norm.read())[0] as number) ?? Number.NaN);
    norm.dispose();
  }
  const e = compare(await param.read(), Float32Array.from(p));
  const en = compare(Float32Array.from(gotNorms), Float32Array.from(norms));
  const state = await opt.stateDict();
  const roundTrip = new AdamW([param], o);
  roundTrip.loadStateDict(structuredClone(state));
  const em = compare((await roundTrip.stateDict()).m[0] as Float32Array, Float32Array.from(m));
  eng.zeroGrad([param]);
  param.dispose();
  return [
    checked('adamw', '3 steps, wd 0.1 (CPU reference)', e, 'param', 1e-5),
    checked('clipGradNorm', 'max 5 over 3 steps', en, 'norm', 1e-5),
    checked('adamw', 'stateDict JSON round trip', em, 'm', 1e-6),
  ];
}

/** Every registered GEMM kernel against the naive one on awkward shapes (the swap-in parity check). */
async function gemmParity(eng: Engine, tf: Tf): Promise<SelftestResult[]> {
  const out: SelftestResult[] = [];
  // Shapes that are not multiples of any tile, every transpose variant, a narrow M (one row tile) and
  // a long K with few output tiles (split-K on every device).
  const shapes: { name: string; a: number[]; b: number[]; transA?: boolean; transB?: boolean }[] = [
    { name: 'batched 2×61×77·77×45', a: [2, 61, 77], b: [2, 77, 45] },
    { name: 'Aᵀ 70×19ᵀ·70×37', a: [70, 19], b: [70, 37], transA: true },
    { name: 'Bᵀ 13×29·67×29ᵀ', a: [13, 29], b: [67, 29], transB: true },
    { name: 'AᵀBᵀ 33×21ᵀ·10×33ᵀ', a: [33, 21], b: [10, 33], transA: true, transB: true },
    { name: 'narrow M 3×130·130×150', a: [3, 130], b: [130, 150] },
    { name: 'split-K 5×1100·1100×7', a: [5, 1100], b: [1100, 7] },
    { name: 'split-K Aᵀ 1030×9ᵀ·1030×70', a: [1030, 9], b: [1030, 70], transA: true },
  ];
  for (const k of gemmKernels()) {
    forceGemmKernel(eng, k.name);
    for (const sh of shapes) {
      const o = { transA: !!sh.transA, transB: !!sh.transB };
      const c: Case = {
        op: `gemm:${k.name}`,
        name: sh.name,
        inputs: [{ shape: sh.a }, { shape: sh.b }],
        gpu: ([a, b]) => ops.matmul(a as Tensor, b as Tensor, o),
        ref: (t, [a, b]) => t.matMul(a as TF.Tensor2D, b as TF.Tensor2D, o.transA, o.transB),
      };
      // No input needs a gradient here: compare the forward only.
      out.push(await runForwardOnly(eng, tf, c, 5));
    }
  }
  forceGemmKernel(eng, undefined);
  return out;
}

async function runForwardOnly(eng: Engine, tf: Tf, c: Case, seed: number): Promise<SelftestResult> {
  const r = rng(seed);
  const data = randomInputs(r, c);
  const xs = c.inputs.map((s, i) => eng.upload(data[i] as Float32Array, s.shape));
  const y = eng.noGrad(() => c.gpu(xs));
  const got = await y.read();
  const want = tf.tidy(
    () =>
      c
        .ref(
          tf,
          c.inputs.map((s, i) => tf.tensor(data[i] as Float32Array, s.shape)),
        )
        .dataSync() as Float32Array,
  );
  for (const t of [...xs, y]) t.dispose();
  return checked(c.op, c.name, compare(got, want), 'output', c.tol ?? 2e-4);
}

async function loadTf(): Promise<Tf> {
  // The full package: its Node bundle registers the CPU backend and every gradient function.
  const tf = await import('@tensorflow/tfjs');
  // tfjs prints a "use tfjs-node" banner on Node unless told it is not on Node; we want the pure JS CPU
  // backend as the independent reference anyway.
  tf.env().set('IS_NODE', false);
  await tf.setBackend('cpu');
  return tf;
}

export interface SelftestOptions extends EngineOptions {
  /** Only cases whose op or name contains this substring. */
  filter?: string;
  seed?: number;
  onResult?: (r: SelftestResult) => void;
}

export async function runSelftest(o: SelftestOptions = {}): Promise<SelftestReport> {
  const t0 = performance.now();
  const tf = await loadTf();
  const all = cases().filter((c) => !o.filter || `${c.op} ${c.name}`.includes(o.filter));
  const results: SelftestResult[] = [];
  const emit = (r: SelftestResult) => {
    results.push(r);
    o.onResult?.(r);
  };
  const eng = await Engine.create(o);
  const adapter = eng.ctx.adapter.description || eng.ctx.adapter.device;
  try {
    for (const [i, c] of all.entries()) emit(await runCase(eng, tf, c, (o.seed ?? 1) * 1000 + i));
    if (!o.filter || 'adamw clipGradNorm'.includes(o.filter))
      for (const r of await optimiserCases(eng)) emit(r);
    if (!o.filter || o.filter.startsWith('gemm')) for (const r of await gemmParity(eng, tf)) emit(r);
  } finally {
    eng.destroy();
  }
  // The chunked paths: the same cases on an engine that pretends bindings stop at 128 KiB.
  const small = await Engine.create({ ...o, maxBindingBytes: 128 * 1024 });
  try {
    for (const [i, c] of all.entries()) {
      if (!c.chunked) continue;
      const r = await runCase(small, tf, c, (o.seed ?? 1) * 1000 + i);
      emit({ ...r, case: `${r.case} @128KiB bindings` });
    }
  } finally {
    small.destroy();
  }
  return { adapter, results, pass: results.every((r) => r.pass), seconds: (performance.now() - t0) / 1000 };
}
