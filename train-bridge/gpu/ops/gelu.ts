// gelu(x) = x·Φ(x) = ½x(1 + erf(x/√2)), the exact (erf) form FastViTHD and its projector use.
import { binaryKernel, runBinary, runUnary, unaryKernel } from '../kernels/elementwise.ts';
import { ERF_WGSL } from '../kernels/erf.ts';
import type { Tensor } from '../tensor.ts';

// ---- kernels
const GELU = unaryKernel('gelu', '0.5 * v * (1.0 + erf_t(v * 0.70710678118654752))', ERF_WGSL);
// d/dx = Φ(x) + x·φ(x)
const GELU_GRAD = binaryKernel(
  'gelu_grad',
  'vb * (0.5 * (1.0 + erf_t(va * 0.70710678118654752)) + va * 0.39894228040143268 * exp(-0.5 * va * va))',
  ERF_WGSL,
);

// ---- forward
export function gelu(x: Tensor): Tensor {
  const y = runUnary(GELU, x);
  x.engine.record('gelu', [x], y, [x], (dy) => [runBinary(GELU_GRAD, x, dy)]);
  return y;
}
