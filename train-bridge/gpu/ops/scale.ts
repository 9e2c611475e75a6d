// scale(x, s) = s·x for a JS number s.
import { runUnary, unaryKernel } from '../kernels/elementwise.ts';
import type { Tensor } from '../tensor.ts';

// ---- kernel
const SCALE = unaryKernel('scale', 'v * P.a');

// ---- forward
export function scale(x: Tensor, s: number): Tensor {
  const y = runUnary(SCALE, x, { a: s });
  // ---- gradient: d(s·x) = s·dy
  x.engine.record('scale', [x], y, [], (dy) => [runUnary(SCALE, dy, { a: s })]);
  return y;
}
