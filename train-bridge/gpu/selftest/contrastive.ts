// Selftest cases of the contrastive objective's ops: the SigLIP loss and the text tower's embeddingBag.
import type * as TF from '@tensorflow/tfjs';
import * as ops from '../ops/index.ts';
import type { Tensor } from '../tensor.ts';
import type { Case, Tf } from './harness.ts';

export function contrastiveCases(): Case[] {
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
