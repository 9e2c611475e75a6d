// sigmoid(x) = 1 / (1 + e^−x) (the SE block's gate).
import { binaryKernel, runBinary, runUnary, unaryKernel } from '../kernels/elementwise.ts';
import type { Tensor } from '../tensor.ts';

// ---- kernels
const SIGMOID = unaryKernel('sigmoid', '1.0 / (1.0 + exp(-v))');
// From the saved output y: dy·y(1 − y).
const SIGMOID_GRAD = binaryKernel('sigmoid_grad', 'vb * va * (1.0 - va)');

// ---- forward
export function sigmoid(x: Tensor): Tensor {
  const y = runUnary(SIGMOID, x);
  x.engine.record('sigmoid', [x], y, [y], (dy) => [runBinary(SIGMOID_GRAD, y, dy)]);
  return y;
}
