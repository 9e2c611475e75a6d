// Selftest cases of the elementwise ops (add, sub, mul with broadcasting, addScaled, addAll, scale, gelu, relu,
// sigmoid, exp)
// and the shape ops (permute, reshape).
import type * as TF from '@tensorflow/tfjs';
import * as ops from '../ops/index.ts';
import type { Tensor } from '../tensor.ts';
import { type Case, likeTf } from './harness.ts';
import { erfGelu } from './reference.ts';

export function elementwiseCases(): Case[] {
  return [
    likeTf('add', '[3,5,7,11]+[11]', [3, 5, 7, 11], [11]),
    { ...likeTf('add', 'same shape, large', [40013], [40013]), chunked: true },
    likeTf('sub', '[4,9,13]-[9,13]', [4, 9, 13], [9, 13]),
    { ...likeTf('mul', 'layer scale [2,6,5,40003/…]·[37]', [2, 29, 31, 37], [37]), chunked: true },
    likeTf('mul', 'scalar [1]', [7, 9], [1]),
    // Fused residual with layer scale (x + y·γ) and branch sum; scalar, vec4 and chunked forms.
    ...[
      { name: '[3,5,7,11]+[3,5,7,11]·[11]', shape: [3, 5, 7, 11] },
      { name: 'vec4 [2,6,5,12]+…·[12]', shape: [2, 6, 5, 12] },
      { name: 'large [2,29,31,37]+…·[37]', shape: [2, 29, 31, 37], chunked: true },
    ].map(({ name, shape, chunked }) => ({
      op: 'addScaled',
      name,
      chunked,
      inputs: [
        { shape, grad: true },
        { shape, grad: true },
        { shape: shape.slice(-1), grad: true },
      ],
      gpu: ([x, y, g]: Tensor[]) => ops.addScaled(x as Tensor, y as Tensor, g as Tensor),
      ref: (tf: typeof TF, [x, y, g]: TF.Tensor[]) =>
        tf.add(x as TF.Tensor, tf.mul(y as TF.Tensor, g as TF.Tensor)),
    })),
    // With the bias of the conv before it: x + (y + b)·γ.
    ...[
      { name: 'bias [3,5,7,11]', shape: [3, 5, 7, 11] },
      { name: 'bias vec4 [2,6,5,12]', shape: [2, 6, 5, 12] },
      { name: 'bias large [2,29,31,37]', shape: [2, 29, 31, 37], chunked: true },
    ].map(({ name, shape, chunked }) => ({
      op: 'addScaled',
      name,
      chunked,
      inputs: [shape, shape, shape.slice(-1), shape.slice(-1)].map((sh) => ({ shape: sh, grad: true })),
      gpu: ([x, y, g, b]: Tensor[]) => ops.addScaled(x as Tensor, y as Tensor, g as Tensor, b as Tensor),
      ref: (tf: typeof TF, [x, y, g, b]: TF.Tensor[]) =>
        tf.add(x as TF.Tensor, tf.mul(tf.add(y as TF.Tensor, b as TF.Tensor), g as TF.Tensor)),
    })),
    ...[2, 3, 4, 5].map((n) => ({
      op: 'addAll',
      name: `${n} × [3,4,7]`,
      inputs: Array.from({ length: n }, () => ({ shape: [3, 4, 7], grad: true })),
      gpu: (xs: Tensor[]) => ops.addAll(xs),
      ref: (tf: typeof TF, xs: TF.Tensor[]) => xs.reduce((a, b) => tf.add(a, b)),
    })),
    {
      op: 'scale',
      name: '×(−2.5)',
      inputs: [{ shape: [5, 19], grad: true }],
      gpu: ([a]) => ops.scale(a as Tensor, -2.5),
      ref: (tf, [a]) => tf.mul(a as TF.Tensor, -2.5),
    },
    {
      op: 'gelu',
      name: 'erf form',
      inputs: [{ shape: [3, 7, 5, 13], grad: true }],
      gpu: ([a]) => ops.gelu(a as Tensor),
      ref: (tf, [a]) => erfGelu(tf, a as TF.Tensor),
    },
    // gelu(y + b), the bias add folded into the activation (scalar and vec4).
    ...[
      { name: '[3,5,7,11]+[11]', shape: [3, 5, 7, 11] },
      { name: 'vec4 [2,6,5,12]+[12]', shape: [2, 6, 5, 12] },
    ].map(({ name, shape }) => ({
      op: 'biasGelu',
      name,
      inputs: [
        { shape, grad: true },
        { shape: shape.slice(-1), grad: true },
      ],
      gpu: ([y, b]: Tensor[]) => ops.biasGelu(y as Tensor, b as Tensor),
      ref: (tf: typeof TF, [y, b]: TF.Tensor[]) => erfGelu(tf, tf.add(y as TF.Tensor, b as TF.Tensor)),
    })),
    likeTf('relu', '[301]', [301]),
    // Sizes that divide by 4 take the vec4 kernels (forward and gradient), broadcast and chunked included.
    likeTf('add', 'vec4 [3,5,7,12]+[12]', [3, 5, 7, 12], [12]),
    { ...likeTf('add', 'vec4 same shape, large', [40012], [40012]), chunked: true },
    likeTf('mul', 'vec4 [6,8]·[6,8]', [6, 8], [6, 8]),
    likeTf('relu', 'vec4 [2,64]', [2, 64]),
    {
      op: 'gelu',
      name: 'erf form, vec4',
      inputs: [{ shape: [3, 7, 5, 16], grad: true }],
      gpu: ([a]) => ops.gelu(a as Tensor),
      ref: (tf, [a]) => erfGelu(tf, a as TF.Tensor),
    },
    likeTf('sigmoid', '[17,23]', [17, 23]),
    {
      op: 'exp',
      name: '[2,33]',
      inputs: [{ shape: [2, 33], grad: true, init: 'small' }],
      gpu: ([a]) => ops.exp(a as Tensor),
      ref: (tf, [a]) => tf.exp(a as TF.Tensor),
    },
    {
      op: 'permute',
      name: '[2,3,4,5] → (0,2,3,1)',
      inputs: [{ shape: [2, 3, 4, 5], grad: true }],
      gpu: ([x]) => ops.permute(x as Tensor, [0, 2, 3, 1]),
      ref: (tf, [x]) => tf.transpose(x as TF.Tensor, [0, 2, 3, 1]),
    },
    {
      op: 'reshape',
      name: '[6,10] → [3,−1] then gelu',
      inputs: [{ shape: [6, 10], grad: true }],
      gpu: ([x]) => ops.gelu(ops.reshape(x as Tensor, [3, -1])),
      ref: (tf, [x]) => erfGelu(tf, tf.reshape(x as TF.Tensor, [3, 20])),
    },
  ];
}
