// gelu(x) = x·Φ(x) = ½x(1 + erf(x/√2)), the exact (erf) form FastViTHD and its projector use; biasGelu(y, b) =
// gelu(y + b) in one kernel (a conv's bias add folded into the activation after it).
import {
  binaryKernel,
  runBinary,
  runBroadcast,
  runUnary,
  ternaryKernel,
  unaryKernel,
} from '../kernels/elementwise.ts';
import { ERF_WGSL } from '../kernels/erf.ts';
import type { Tensor } from '../tensor.ts';
import { checkBroadcast, reduceToShape } from './broadcast.ts';

// ---- kernels (the expressions are written once, so the fused forms round exactly as gelu after add)
const geluExpr = (x: string) => `0.5 * ${x} * (1.0 + erf_t(${x} * 0.70710678118654752))`;
// d/dx = Φ(x) + x·φ(x)
const geluGradExpr = (x: string, dy: string) =>
  `${dy} * (0.5 * (1.0 + erf_t(${x} * 0.70710678118654752)) + ${x} * 0.39894228040143268 * exp(-0.5 * ${x} * ${x}))`;
const GELU = unaryKernel('gelu', geluExpr('v'), ERF_WGSL);
const GELU_GRAD = binaryKernel('gelu_grad', geluGradExpr('va', 'vb'), ERF_WGSL);
const BIAS_GELU = binaryKernel('bias_gelu', geluExpr('(va + vb)'), ERF_WGSL);
// a = y, b = dy, c = the bias
const BIAS_GELU_GRAD = ternaryKernel('bias_gelu_grad', geluGradExpr('(va + vc)', 'vb'), ERF_WGSL);

// ---- forward
export function gelu(x: Tensor): Tensor {
  const y = runUnary(GELU, x);
  x.engine.record('gelu', [x], y, [x], (dy) => [runBinary(GELU_GRAD, x, dy)]);
  return y;
}

export function biasGelu(y: Tensor, bias: Tensor): Tensor {
  checkBroadcast('biasGelu', y, bias);
  const out = runBinary(BIAS_GELU, y, bias);
  y.engine.record('biasGelu', [y, bias], out, [y, bias], (dy, needs) => {
    const g = runBroadcast(BIAS_GELU_GRAD, [y, dy], bias);
    return [needs[0] ? g : undefined, needs[1] ? reduceToShape(g, bias.shape, bias.size) : undefined];
  });
  return out;
}
