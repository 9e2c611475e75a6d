// relu(x) = max(x, 0) (the SE block's squeeze activation).
import { binaryKernel, runBinary, runUnary, unaryKernel } from '../kernels/elementwise.ts';
import type { Tensor } from '../tensor.ts';

// ---- kernels
const RELU = unaryKernel('relu', 'max(v, T(0.0))');
const RELU_GRAD = binaryKernel('relu_grad', 'select(T(0.0), vb, va > T(0.0))');

// ---- forward
export function relu(x: Tensor): Tensor {
  const y = runUnary(RELU, x);
  x.engine.record('relu', [x], y, [x], (dy) => [runBinary(RELU_GRAD, x, dy)]);
  return y;
}
