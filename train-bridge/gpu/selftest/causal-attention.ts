// Selftest cases of causalAttention: grouped-query heads, packed samples and padding, against a dense
// TF.js softmax(q·kᵀ·scale + mask)·v whose mask allows a token its own sample's earlier tokens.
import type * as TF from '@tensorflow/tfjs';
import * as ops from '../ops/index.ts';
import type { Tensor } from '../tensor.ts';
import type { Case, Tf } from './harness.ts';

function refCausal(tf: Tf, q: TF.Tensor, k: TF.Tensor, v: TF.Tensor, segments: Int32Array): TF.Tensor {
  const [T, Hq, hd] = q.shape as [number, number, number];
  const Hkv = k.shape[1] as number;
  const bias = new Float32Array(T * T).fill(-1e9);
  for (let i = 0; i < T; i++)
    for (let j = 0; j <= i; j++)
      if ((segments[i] as number) >= 0 && segments[j] === segments[i]) bias[i * T + j] = 0;
  const kvHead = tf.tensor1d(
    Int32Array.from({ length: Hq }, (_, h) => Math.floor(h / (Hq / Hkv))),
    'int32',
  );
  const qh = tf.transpose(q, [1, 0, 2]) as TF.Tensor3D;
  const kh = tf.gather(tf.transpose(k, [1, 0, 2]), kvHead) as TF.Tensor3D;
  const vh = tf.gather(tf.transpose(v, [1, 0, 2]), kvHead) as TF.Tensor3D;
  const scores = tf.add(tf.mul(tf.matMul(qh, kh, false, true), 1 / Math.sqrt(hd)), tf.tensor2d(bias, [T, T]));
  const out = tf.transpose(tf.matMul(tf.softmax(scores) as TF.Tensor3D, vh), [1, 0, 2]);
  // Padding rows attend to nothing: the engine gives 0 there.
  const valid = tf.tensor3d(
    Float32Array.from(segments, (s) => (s >= 0 ? 1 : 0)),
    [T, 1, 1],
  );
  return tf.mul(out, valid);
}

function attentionCase(
  name: string,
  T: number,
  Hq: number,
  Hkv: number,
  hd: number,
  segments: Int32Array,
): Case {
  return {
    op: 'causalAttention',
    name,
    inputs: [
      { shape: [T, Hq, hd], grad: true },
      { shape: [T, Hkv, hd], grad: true },
      { shape: [T, Hkv, hd], grad: true },
    ],
    gpu: ([q, k, v]) => ops.causalAttention(q as Tensor, k as Tensor, v as Tensor, segments),
    ref: (tf, [q, k, v]) => refCausal(tf, q as TF.Tensor, k as TF.Tensor, v as TF.Tensor, segments),
  };
}

/** Runs of sample ids: [length, id] pairs (id −1 = padding). */
function runs(...spec: [number, number][]): Int32Array {
  return Int32Array.from(spec.flatMap(([n, id]) => Array<number>(n).fill(id)));
}

export function causalAttentionCases(): Case[] {
  return [
    attentionCase('GQA 4:2, [11] packed 5+3+pad+2, d=8', 11, 4, 2, 8, runs([5, 0], [3, 1], [1, -1], [2, 2])),
    // Past one 64-query block and one 16-key tile, with a sample that crosses the block boundary (same
    // head dim: each head dim compiles its own four kernels, seconds each on lavapipe).
    attentionCase('GQA 2:1, [150] 70 + 5 pad + 75, d=8', 150, 2, 1, 8, runs([70, 0], [5, -1], [75, 1])),
  ];
}
