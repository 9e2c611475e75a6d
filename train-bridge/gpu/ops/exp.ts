// exp(x) (e.g. SigLIP's temperature t = exp(t′)).
import { binaryKernel, runBinary, runUnary, unaryKernel } from '../kernels/elementwise.ts';
import type { Tensor } from '../tensor.ts';

// ---- kernels
const EXP = unaryKernel('exp', 'exp(v)');
const MUL = binaryKernel('mul', 'va * vb');

// ---- forward
export function exp(x: Tensor): Tensor {
  const y = runUnary(EXP, x);
  x.engine.record('exp', [x], y, [y], (dy) => [runBinary(MUL, y, dy)]);
  return y;
}
