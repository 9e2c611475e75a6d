// Selftest cases of lmHeadCrossEntropy against TF.js's dense logits and log-softmax: several vocabulary
// chunks with a ragged last one, ignored tokens, and targets in every chunk.
import type * as TF from '@tensorflow/tfjs';
import * as ops from '../ops/index.ts';
import type { Tensor } from '../tensor.ts';
import type { Case, Tf } from './harness.ts';

function refCrossEntropy(tf: Tf, h: TF.Tensor, w: TF.Tensor, labels: Int32Array): TF.Tensor {
  const V = w.shape[0] as number;
  const logp = tf.logSoftmax(tf.matMul(h as TF.Tensor2D, w as TF.Tensor2D, false, true));
  const pick = new Float32Array(labels.length * V);
  let n = 0;
  labels.forEach((lab, t) => {
    if (lab === -100) return;
    pick[t * V + lab] = 1;
    n++;
  });
  return tf.reshape(tf.div(tf.neg(tf.sum(tf.mul(logp, tf.tensor2d(pick, [labels.length, V])))), n), [1]);
}

function ceCase(
  name: string,
  T: number,
  D: number,
  V: number,
  labels: Int32Array,
  chunk?: number,
  weightTransposed = false,
): Case {
  // With the default chunk the weight (V·D) decides the chunking: two chunks on 128 KiB bindings.
  return {
    op: 'lmHeadCrossEntropy',
    name,
    inputs: [
      { shape: [T, D], grad: true },
      { shape: weightTransposed ? [D, V] : [V, D], grad: true },
    ],
    gpu: ([h, w]) => ops.lmHeadCrossEntropy(h as Tensor, w as Tensor, labels, { chunk, weightTransposed }),
    ref: (tf, [h, w]) =>
      refCrossEntropy(
        tf,
        h as TF.Tensor,
        weightTransposed ? tf.transpose(w as TF.Tensor) : (w as TF.Tensor),
        labels,
      ),
    chunked: chunk === undefined,
  };
}

export function crossEntropyCases(): Case[] {
  const labels = Int32Array.from([5, -100, 299, 64, 63, -100, 0, 130, 200]);
  return [
    ceCase('T=9 D=16 V=300, chunks of 64 (ragged), 2 ignored', 9, 16, 300, labels, 64),
    ceCase('untied [D, V] weight, chunks of 64', 9, 16, 300, labels, 64, true),
    ceCase('T=9 D=16 V=2500, default chunks', 9, 16, 2500, Int32Array.from([2499, ...labels.slice(1)])),
  ];
}
