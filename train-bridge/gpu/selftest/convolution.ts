// Selftest cases of conv2d (dense, grouped, depthwise, strided, chunked) and avgPool2d.
import type * as TF from '@tensorflow/tfjs';
import * as ops from '../ops/index.ts';
import type { Tensor } from '../tensor.ts';
import type { Case, Tf } from './harness.ts';

function pad(tf: Tf, x: TF.Tensor, p: number): TF.Tensor4D {
  return tf.pad(x as TF.Tensor4D, [
    [0, 0],
    [p, p],
    [p, p],
    [0, 0],
  ]);
}

/** Grouped conv in TF.js (HWIO weights, our channel grouping) built from conv2d / depthwiseConv2d. */
function refConv(tf: Tf, x: TF.Tensor, w: TF.Tensor, stride: number, p: number, groups: number): TF.Tensor {
  const xp = pad(tf, x, p);
  const [KH, KW, Cg, Cout] = w.shape as [number, number, number, number];
  const Cin = x.shape[3] as number;
  if (groups === 1) return tf.conv2d(xp, w as TF.Tensor4D, stride, 'valid');
  if (groups === Cin && Cg === 1) {
    return tf.depthwiseConv2d(xp, tf.reshape(w, [KH, KW, Cin, Cout / Cin]) as TF.Tensor4D, stride, 'valid');
  }
  const xs = tf.split(xp, groups, 3);
  const ws = tf.split(w as TF.Tensor4D, groups, 3);
  return tf.concat(
    xs.map((xi, i) => tf.conv2d(xi as TF.Tensor4D, ws[i] as TF.Tensor4D, stride, 'valid')),
    3,
  );
}

export function convolutionCases(): Case[] {
  const conv = (
    name: string,
    xs: number[],
    ws: number[],
    stride: number,
    padding: number,
    groups: number,
    chunked = false,
  ): Case => ({
    op: 'conv2d',
    name,
    inputs: [
      { shape: xs, grad: true },
      { shape: ws, grad: true, init: 'small' },
    ],
    gpu: ([x, w]) => ops.conv2d(x as Tensor, w as Tensor, { stride, padding, groups }),
    ref: (tf, [x, w]) => refConv(tf, x as TF.Tensor, w as TF.Tensor, stride, padding, groups),
    chunked,
  });
  // conv(x) + conv(1.5·x): x's second gradient is added by the input-gradient kernel into the first (the
  // tape's accumulate-into path), for each kind of input-gradient kernel.
  const twice = (name: string, ...shape: [number[], number[], number, number, number]) => {
    const c = conv(`${name}, x used twice`, ...shape);
    return {
      ...c,
      gpu: ([x, w]: Tensor[]) =>
        ops.add(c.gpu([x as Tensor, w as Tensor]), c.gpu([ops.scale(x as Tensor, 1.5), w as Tensor])),
      ref: (tf: Tf, [x, w]: TF.Tensor[]) =>
        tf.add(
          c.ref(tf, [x as TF.Tensor, w as TF.Tensor]),
          c.ref(tf, [tf.mul(x as TF.Tensor, 1.5), w as TF.Tensor]),
        ),
    };
  };
  return [
    twice('dense 3×3 s2 p1', [2, 9, 11, 3], [3, 3, 3, 8], 2, 1, 1),
    twice('pointwise 1×1', [2, 5, 6, 12], [1, 1, 12, 20], 1, 0, 1),
    twice('depthwise 3×3 s2 p1', [2, 9, 7, 5], [3, 3, 1, 5], 2, 1, 5),
    twice('depthwise 3×3 s2 p1, Cin 4', [2, 9, 7, 4], [3, 3, 1, 4], 2, 1, 4),
    twice('depthwise 7×7 s1 p3', [2, 11, 13, 7], [7, 7, 1, 7], 1, 3, 7),
    conv('dense 3×3 s2 p1 (stem)', [2, 9, 11, 3], [3, 3, 3, 8], 2, 1, 1),
    conv('pointwise 1×1', [2, 5, 6, 12], [1, 1, 12, 20], 1, 0, 1),
    conv('1×1 s2 (scale branch)', [2, 7, 9, 5], [1, 1, 5, 6], 2, 0, 1),
    conv('grouped g=2 3×3 p1', [1, 6, 7, 6], [3, 3, 3, 10], 1, 1, 2),
    conv('grouped 1×1 g=3', [2, 4, 5, 9], [1, 1, 3, 6], 1, 0, 3),
    conv('depthwise 3×3 s1 p1', [2, 9, 10, 10], [3, 3, 1, 10], 1, 1, 10),
    conv('depthwise 1×1 (mixer scale)', [2, 5, 7, 6], [1, 1, 1, 6], 1, 0, 6),
    conv('depthwise 3×3 s2 p1 ×2 (conv_exp)', [2, 9, 7, 5], [3, 3, 1, 10], 2, 1, 5),
    conv('depthwise 7×7 s1 p3 (ConvFFN)', [2, 11, 13, 7], [7, 7, 1, 7], 1, 3, 7),
    conv('depthwise 7×7 s2 p3 ×2 (embed)', [2, 15, 13, 6], [7, 7, 1, 12], 2, 3, 6),
    // Cin divisible by 4: the strided input gradient takes 4 channels a thread.
    conv('depthwise 7×7 s2 p3 ×2, Cin 8', [2, 11, 9, 8], [7, 7, 1, 16], 2, 3, 8),
    conv('depthwise 3×3 s2 p1, Cin 4', [2, 9, 7, 4], [3, 3, 1, 4], 2, 1, 4),
    // The input gradient runs the forward's strip kernel on rotated weights: padding k−1−p ≠ p, widths
    // not a multiple of the strip.
    conv('depthwise 7×7 s1 p1 (shrinks)', [1, 12, 19, 9], [7, 7, 1, 9], 1, 1, 9),
    conv('depthwise 5×5 s1 p0 (valid)', [2, 9, 21, 4], [5, 5, 1, 4], 1, 0, 4),
    conv('depthwise 7×7 (chunked images)', [8, 16, 16, 24], [7, 7, 1, 24], 1, 3, 24, true),
    conv('dense 3×3 (chunked images)', [6, 12, 12, 8], [3, 3, 8, 16], 1, 1, 1, true),
    {
      op: 'avgPool2d',
      name: 'k3 s1 p1 (count excludes padding)',
      inputs: [{ shape: [2, 7, 6, 5], grad: true }],
      gpu: ([x]) => ops.avgPool2d(x as Tensor, { kernel: 3, stride: 1, padding: 1 }),
      // tfjs's own avgPool gradient divides by k² even where its forward excluded padding, so the
      // reference is built from ops: a sum over the window (depthwise conv with ones) / real-pixel count.
      ref: (tf, [x]) => {
        const [, H, W, C] = (x as TF.Tensor).shape as number[];
        const sums = tf.depthwiseConv2d(
          pad(tf, x as TF.Tensor, 1),
          tf.ones([3, 3, C as number, 1]) as TF.Tensor4D,
          1,
          'valid',
        );
        const counts = tf.depthwiseConv2d(
          pad(tf, tf.ones([1, H as number, W as number, 1]), 1),
          tf.ones([3, 3, 1, 1]) as TF.Tensor4D,
          1,
          'valid',
        );
        return tf.div(sums, counts);
      },
    },
    {
      op: 'avgPool2d',
      name: 'k2 s2',
      inputs: [{ shape: [2, 8, 10, 3], grad: true }],
      gpu: ([x]) => ops.avgPool2d(x as Tensor, { kernel: 2, stride: 2 }),
      ref: (tf, [x]) => tf.avgPool(x as TF.Tensor4D, 2, 2, 'valid'),
    },
  ];
}
