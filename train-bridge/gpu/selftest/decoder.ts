// Selftest cases of the Qwen2 decoder's per-token ops: embedding (gather / scatter-add), rmsNorm, siluMul.
import type * as TF from '@tensorflow/tfjs';
import * as ops from '../ops/index.ts';
import type { Tensor } from '../tensor.ts';
import type { Case, Tf } from './harness.ts';

/** Token ids with repeats (summed in the gradient) and a −1 (a zero row). */
function tokenIds(n: number, V: number): Int32Array {
  return Int32Array.from({ length: n }, (_, t) => (t === 3 ? -1 : ((t % 13) * 119) % V));
}

function refEmbedding(tf: Tf, table: TF.Tensor, ids: Int32Array): TF.Tensor {
  const safe = tf.tensor1d(
    Int32Array.from(ids, (i) => Math.max(i, 0)),
    'int32',
  );
  const keep = tf.tensor2d(
    Float32Array.from(ids, (i) => (i < 0 ? 0 : 1)),
    [ids.length, 1],
  );
  return tf.mul(tf.gather(table, safe), keep);
}

export function decoderCases(): Case[] {
  const ids = tokenIds(19, 23);
  const bigIds = tokenIds(40, 1500);
  return [
    {
      op: 'embedding',
      name: 'V=23 D=6, 19 tokens, repeats and −1',
      inputs: [{ shape: [23, 6], grad: true }],
      gpu: ([t]) => ops.embedding(t as Tensor, ids),
      ref: (tf, [t]) => refEmbedding(tf, t as TF.Tensor, ids),
    },
    {
      op: 'embedding',
      name: 'V=1500 D=24 (row blocks)',
      inputs: [{ shape: [1500, 24], grad: true }],
      gpu: ([t]) => ops.embedding(t as Tensor, bigIds),
      ref: (tf, [t]) => refEmbedding(tf, t as TF.Tensor, bigIds),
      chunked: true,
    },
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
