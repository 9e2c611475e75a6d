// sub(a, b) = a − b, b broadcasting over a's leading dims.
import { binaryKernel, runBinary } from '../kernels/elementwise.ts';
import type { Tensor } from '../tensor.ts';
import { checkBroadcast, reduceToShape } from './broadcast.ts';
import { scale } from './scale.ts';

// ---- kernel
const SUB = binaryKernel('sub', 'va - vb');

// ---- forward
export function sub(a: Tensor, b: Tensor): Tensor {
  checkBroadcast('sub', a, b);
  const y = runBinary(SUB, a, b);
  a.engine.record('sub', [a, b], y, [], (dy, needs) => [
    needs[0] ? dy : undefined,
    needs[1] ? scale(reduceToShape(dy, b.shape, b.size), -1) : undefined,
  ]);
  return y;
}
