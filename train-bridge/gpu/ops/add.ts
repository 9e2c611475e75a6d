// add(a, b) = a + b, b broadcasting over a's leading dims.
import { binaryKernel, runBinary } from '../kernels/elementwise.ts';
import type { Tensor } from '../tensor.ts';
import { checkBroadcast, reduceToShape } from './broadcast.ts';

// ---- kernel
const ADD = binaryKernel('add', 'va + vb');

// ---- forward
export function add(a: Tensor, b: Tensor): Tensor {
  checkBroadcast('add', a, b);
  const y = runBinary(ADD, a, b);
  a.engine.record('add', [a, b], y, [], addGrad(b));
  return y;
}

// ---- gradient
function addGrad(b: Tensor) {
  return (dy: Tensor, needs: boolean[]) => [
    needs[0] ? dy : undefined,
    needs[1] ? reduceToShape(dy, b.shape, b.size) : undefined,
  ];
}
