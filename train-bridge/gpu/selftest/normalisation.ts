// Selftest cases of batchNorm (train, eval, chunked) and layerNormChannel.
import type * as TF from '@tensorflow/tfjs';
import * as ops from '../ops/index.ts';
import type { Tensor } from '../tensor.ts';
import type { Case, InputSpec, Tf } from './harness.ts';

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

export function normalisationCases(): Case[] {
  const bnTrain = (name: string, xs: number[], chunked = false): Case => ({
    op: 'batchNorm',
    name,
    inputs: normInputs(xs),
    gpu: ([x, g, b]) => ops.batchNorm(x as Tensor, bnState(x as Tensor, g as Tensor, b as Tensor), true),
    ref: (tf, [x, g, b]) => refNorm(tf, x as TF.Tensor, g as TF.Tensor, b as TF.Tensor, [0, 1, 2]),
    chunked,
  });
  const bnTrainAdd = (name: string, xs: number[], chunked = false): Case => ({
    op: 'batchNorm',
    name,
    inputs: [...normInputs(xs), { shape: xs, grad: true }],
    gpu: ([x, g, b, a]) =>
      ops.batchNorm(x as Tensor, bnState(x as Tensor, g as Tensor, b as Tensor), true, a as Tensor),
    ref: (tf, [x, g, b, a]) =>
      tf.add(a as TF.Tensor, refNorm(tf, x as TF.Tensor, g as TF.Tensor, b as TF.Tensor, [0, 1, 2])),
    chunked,
  });
  const bnEval = (name: string, xs: number[]): Case => ({
    op: 'batchNorm',
    name,
    inputs: normInputs(xs),
    gpu: ([x, g, b]) => {
      const eng = (x as Tensor).engine;
      const st = bnState(x as Tensor, g as Tensor, b as Tensor);
      const C = xs.at(-1) as number;
      st.runningMean = eng.fill([C], 0.25);
      st.runningVar = eng.fill([C], 2);
      return ops.batchNorm(x as Tensor, st, false);
    },
    ref: (tf, [x, g, b]) =>
      tf.add(
        tf.mul(tf.div(tf.sub(x as TF.Tensor, 0.25), Math.sqrt(2 + 1e-5)), g as TF.Tensor),
        b as TF.Tensor,
      ),
  });
  return [
    bnTrain('train [2,7,9,13]', [2, 7, 9, 13]),
    // addend + bn(x): in the one-dispatch training kernel, then on the multi-dispatch path (chunked) where the
    // addend is a separate add; the addend's gradient is dy.
    bnTrainAdd('train + addend [2,7,9,13]', [2, 7, 9, 13]),
    bnTrainAdd('train + addend (chunked) [8,16,16,24]', [8, 16, 16, 24], true),
    {
      // bn(x) + bn(1.5·x): the one-dispatch backward adds x's second gradient into the first.
      ...bnTrain('train, x used twice [2,7,9,13]', [2, 7, 9, 13]),
      gpu: ([x, g, b]) =>
        ops.add(
          ops.batchNorm(x as Tensor, bnState(x as Tensor, g as Tensor, b as Tensor), true),
          ops.batchNorm(ops.scale(x as Tensor, 1.5), bnState(x as Tensor, g as Tensor, b as Tensor), true),
        ),
      ref: (tf, [x, g, b]) =>
        tf.add(
          refNorm(tf, x as TF.Tensor, g as TF.Tensor, b as TF.Tensor, [0, 1, 2]),
          refNorm(tf, tf.mul(x as TF.Tensor, 1.5), g as TF.Tensor, b as TF.Tensor, [0, 1, 2]),
        ),
    },
    bnTrain('train (chunked) [8,16,16,24]', [8, 16, 16, 24], true),
    bnEval('eval (running stats 0.25 / 2)', [3, 5, 4, 9]),
    // C divisible by 4: the vec4 apply and input-gradient kernels in eval mode.
    bnEval('eval, vec4 [3,5,4,8]', [3, 5, 4, 8]),
    {
      op: 'layerNormChannel',
      name: '[2,5,3,70]',
      inputs: normInputs([2, 5, 3, 70]),
      gpu: ([x, g, b]) => ops.layerNormChannel(x as Tensor, g as Tensor, b as Tensor, 1e-5),
      ref: (tf, [x, g, b]) => refNorm(tf, x as TF.Tensor, g as TF.Tensor, b as TF.Tensor, [3], true),
    },
  ];
}
