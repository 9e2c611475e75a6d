// Selftest cases of the Qwen2 decoder's per-token ops: rmsNorm and siluMul (SwiGLU).
import type * as TF from '@tensorflow/tfjs';
import * as ops from '../ops/index.ts';
import type { Tensor } from '../tensor.ts';
import type { Case } from './harness.ts';

export function decoderCases(): Case[] {
  return [
    {
      op: 'rmsNorm',
      name: '[2,5,67] eps 1e-6',
      inputs: [
        { shape: [2, 5, 67], grad: true },
        { shape: [67], grad: true, init: 'positive' },
      ],
      gpu: ([x, w]) => ops.rmsNorm(x as Tensor, w as Tensor, 1e-6),
      ref: (tf, [x, w]) =>
        tf.mul(
          tf.mul(x as TF.Tensor, tf.rsqrt(tf.add(tf.mean(tf.square(x as TF.Tensor), -1, true), 1e-6))),
          w as TF.Tensor,
        ),
    },
    {
      op: 'siluMul',
      name: '[7,45] (SwiGLU)',
      inputs: [
        { shape: [7, 45], grad: true },
        { shape: [7, 45], grad: true },
      ],
      gpu: ([g, u]) => ops.siluMul(g as Tensor, u as Tensor),
      ref: (tf, [g, u]) => tf.mul(tf.mul(g as TF.Tensor, tf.sigmoid(g as TF.Tensor)), u as TF.Tensor),
    },
    {
      op: 'siluMul',
      name: '[41,1001] (chunked)',
      inputs: [
        { shape: [41, 1001], grad: true },
        { shape: [41, 1001], grad: true },
      ],
      gpu: ([g, u]) => ops.siluMul(g as Tensor, u as Tensor),
      ref: (tf, [g, u]) => tf.mul(tf.mul(g as TF.Tensor, tf.sigmoid(g as TF.Tensor)), u as TF.Tensor),
      chunked: true,
    },
  ];
}
