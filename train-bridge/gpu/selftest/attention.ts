// Selftest cases of softmax and the (FastViTHD) attention composite.
import type * as TF from '@tensorflow/tfjs';
import * as ops from '../ops/index.ts';
import type { Tensor } from '../tensor.ts';
import { type Case, likeTf } from './harness.ts';

export function attentionCases(): Case[] {
  return [
    likeTf('softmax', '[6,9,131]', [6, 9, 131]),
    likeTf('softmax', 'short rows (a thread per row) [5,7,16]', [5, 7, 16]),
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
  ];
}
