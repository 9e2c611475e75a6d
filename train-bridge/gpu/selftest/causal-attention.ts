// Selftest cases of causalAttention (grouped-query heads, packed samples and padding) and decodeAttention
// (a KV cache) against a dense TF.js softmax(q·kᵀ·scale + mask)·v.
import type * as TF from '@tensorflow/tfjs';
import * as ops from '../ops/index.ts';
import type { Tensor } from '../tensor.ts';
import type { Case, Tf } from './harness.ts';

/** softmax(q·kᵀ/√d + mask)·v per query head (K/V head ⌊h·Hkv/Hq⌋); rows with no allowed key give 0. */
function refMasked(
  tf: Tf,
  q: TF.Tensor,
  k: TF.Tensor,
  v: TF.Tensor,
  allowed: (i: number, j: number) => boolean,
) {
  const [Tq, Hq, hd] = q.shape as [number, number, number];
  const [Tk, Hkv] = k.shape as [number, number];
  const bias = new Float32Array(Tq * Tk).fill(-1e9);
  const rowValid = new Float32Array(Tq);
  for (let i = 0; i < Tq; i++)
    for (let j = 0; j < Tk; j++)
      if (allowed(i, j)) {
        bias[i * Tk + j] = 0;
        rowValid[i] = 1;
      }
  const kvHead = tf.tensor1d(
    Int32Array.from({ length: Hq }, (_, h) => Math.floor(h / (Hq / Hkv))),
    'int32',
  );
  const qh = tf.transpose(q, [1, 0, 2]) as TF.Tensor3D;
  const kh = tf.gather(tf.transpose(k, [1, 0, 2]), kvHead) as TF.Tensor3D;
  const vh = tf.gather(tf.transpose(v, [1, 0, 2]), kvHead) as TF.Tensor3D;
  const scores = tf.add(
    tf.mul(tf.matMul(qh, kh, false, true), 1 / Math.sqrt(hd)),
    tf.tensor2d(bias, [Tq, Tk]),
  );
  const out = tf.transpose(tf.matMul(tf.softmax(scores) as TF.Tensor3D, vh), [1, 0, 2]);
  return tf.mul(out, tf.tensor3d(rowValid, [Tq, 1, 1]));
}

function refCausal(tf: Tf, q: TF.Tensor, k: TF.Tensor, v: TF.Tensor, segments: Int32Array): TF.Tensor {
  return refMasked(
    tf,
    q,
    k,
    v,
    (i, j) => j <= i && (segments[i] as number) >= 0 && segments[j] === segments[i],
  );
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
  // A KV cache of two samples (keys 0–6 and 7–11), one new query each, and a query that sees one key.
  const ranges = Int32Array.from([0, 7, 7, 12, 3, 4]);
  return [
    {
      op: 'decodeAttention',
      name: 'KV cache [12] keys, 3 queries, GQA 4:2, d=8',
      inputs: [{ shape: [3, 4, 8] }, { shape: [12, 2, 8] }, { shape: [12, 2, 8] }],
      gpu: ([q, k, v]) => ops.decodeAttention(q as Tensor, k as Tensor, v as Tensor, ranges),
      ref: (tf, [q, k, v]) =>
        refMasked(
          tf,
          q as TF.Tensor,
          k as TF.Tensor,
          v as TF.Tensor,
          (i, j) => j >= ranges[2 * i]! && j < ranges[2 * i + 1]!,
        ),
      forwardOnly: true,
    },
    attentionCase('GQA 4:2, [11] packed 5+3+pad+2, d=8', 11, 4, 2, 8, runs([5, 0], [3, 1], [1, -1], [2, 2])),
    // Past one 64-query block and one 16-key tile, with a sample that crosses the block boundary (same
    // head dim: each head dim compiles its own four kernels, seconds each on lavapipe).
    attentionCase('GQA 2:1, [150] 70 + 5 pad + 75, d=8', 150, 2, 1, 8, runs([70, 0], [5, -1], [75, 1])),
  ];
}
