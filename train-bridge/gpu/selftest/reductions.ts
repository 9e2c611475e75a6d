// Selftest cases of the reductions: meanSpatial, sum, mean.
import type * as TF from '@tensorflow/tfjs';
import * as ops from '../ops/index.ts';
import type { Tensor } from '../tensor.ts';
import type { Case } from './harness.ts';

export function reductionCases(): Case[] {
  return [
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
  ];
}
