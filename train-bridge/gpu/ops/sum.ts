// sum(x) and mean(x): every element down to a scalar [1] (losses).
import { binaryKernel, runBinary } from '../kernels/elementwise.ts';
import { reduceRows } from '../kernels/reduce-rows.ts';
import type { Tensor } from '../tensor.ts';

// ---- kernel (gradient): every element gets the scalar upstream gradient times a constant
const SPREAD = binaryKernel('sum_grad', 'vb * P.a');

function reduceAll(x: Tensor, scale: number, op: string): Tensor {
  const eng = x.engine;
  const y = reduceRows(x, { B: 1, R: x.size, C: 1, scale, shape: [1] });
  eng.record(op, [x], y, [], (dy) => {
    // ---- gradient: dx = dy·scale everywhere (x is only a shape donor for the broadcast)
    const ones = eng.empty(x.shape);
    const dx = runBinary(SPREAD, ones, dy, { a: scale });
    ones.dispose();
    return [dx];
  });
  return y;
}

// ---- forward
export function sum(x: Tensor): Tensor {
  return reduceAll(x, 1, 'sum');
}

export function mean(x: Tensor): Tensor {
  return reduceAll(x, 1 / x.size, 'mean');
}
