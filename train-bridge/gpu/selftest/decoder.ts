// Selftest cases of the Qwen2 decoder's per-token ops: embedding (gather / scatter-add), rmsNorm, rope,
// siluMul.
import type * as TF from '@tensorflow/tfjs';
import * as ops from '../ops/index.ts';
import type { Tensor } from '../tensor.ts';
import type { Case, Tf } from './harness.ts';

/** Token ids with repeats (summed in the gradient) and a −1 (a zero row). */
function tokenIds(n: number, V: number): Int32Array {
  return Int32Array.from({ length: n }, (_, t) => (t === 3 ? -1 : ((t % 13) * 119) % V));
}

/** rotate_half RoPE in TF.js from the angles the reference computes (θ^(−2i/d) in f32). */
function refRope(tf: Tf, x: TF.Tensor, positions: Int32Array, theta: number): TF.Tensor {
  const [T, , hd] = x.shape as [number, number, number];
  const half = hd / 2;
  const f = Math.fround;
  const angles = Float32Array.from({ length: T * half }, (_, k) => {
    const i = k % half;
    return f((positions[Math.floor(k / half)] as number) * f(1 / f(theta ** f(f(2 * i) / hd))));
  });
  const cos = tf.reshape(tf.tensor(angles.map(Math.cos)), [T, 1, half]);
  const sin = tf.reshape(tf.tensor(angles.map(Math.sin)), [T, 1, half]);
  const [x1, x2] = tf.split(x, 2, 2) as [TF.Tensor, TF.Tensor];
  return tf.concat([tf.sub(tf.mul(x1, cos), tf.mul(x2, sin)), tf.add(tf.mul(x2, cos), tf.mul(x1, sin))], 2);
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
  // Two packed samples, a padding token at 0 and one far position (large angles).
  const positions = Int32Array.from([0, 1, 2, 3, 4, 0, 1, 2, 0, 4095]);
  return [
    {
      op: 'rope',
      name: '[10,3,16] θ=1e6, packed positions',
      inputs: [{ shape: [10, 3, 16], grad: true }],
      gpu: ([x]) => ops.rope(x as Tensor, ops.ropeTable((x as Tensor).engine, positions, 16, 1e6)),
      ref: (tf, [x]) => refRope(tf, x as TF.Tensor, positions, 1e6),
    },
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
