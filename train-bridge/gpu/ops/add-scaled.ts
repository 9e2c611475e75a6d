// addScaled(x, y, γ, bias?) = x + (y + bias) ⊙ γ, γ and bias broadcasting over y's leading dims: a residual
// with layer scale (and the bias of the conv before it) in one dispatch instead of add, mul and add. Same
// gradients as those ops (x: dy, y: dy ⊙ γ, bias: Σ dy ⊙ γ, γ: Σ dy ⊙ (y + bias)).
import { quaternaryKernel, runBroadcast, ternaryKernel } from '../kernels/elementwise.ts';
import { reduceRows } from '../kernels/reduce-rows.ts';
import { shapeString, type Tensor } from '../tensor.ts';
import { checkBroadcast } from './broadcast.ts';
import { mulGradA, mulGradB } from './mul.ts';

// ---- kernel
// The product is rounded before the add, as in mul then add (no fused multiply-add).
const ADD_SCALED = ternaryKernel('add_scaled', 'va + (vb * vc)');
const ADD_SCALED_BIAS = quaternaryKernel('add_scaled_bias', 'va + ((vb + vd) * vc)');

// ---- forward
export function addScaled(x: Tensor, y: Tensor, gamma: Tensor, bias?: Tensor): Tensor {
  if (x.size !== y.size || x.rank !== y.rank || x.shape.some((d, i) => d !== y.shape[i]))
    throw new Error(`addScaled: x ${shapeString(x.shape)} and y ${shapeString(y.shape)} differ`);
  checkBroadcast('addScaled', y, gamma);
  if (bias && (bias.size !== gamma.size || bias.rank !== gamma.rank))
    throw new Error(`addScaled: bias ${shapeString(bias.shape)} for γ ${shapeString(gamma.shape)}`);
  if (!bias) {
    const out = runBroadcast(ADD_SCALED, [x, y], gamma);
    x.engine.record('addScaled', [x, y, gamma], out, [y, gamma], (dy, needs) => [
      needs[0] ? dy : undefined,
      needs[1] ? mulGradA(dy, gamma) : undefined,
      needs[2] ? mulGradB(dy, y, gamma) : undefined,
    ]);
    return out;
  }
  const out = runBroadcast(ADD_SCALED_BIAS, [x, y], gamma, {}, [bias]);
  x.engine.record('addScaled', [x, y, gamma, bias], out, [y, gamma, bias], (dy, needs) => {
    const dyScaled = needs[1] || needs[3] ? mulGradA(dy, gamma) : undefined;
    const C = gamma.size;
    const R = y.size / C;
    return [
      needs[0] ? dy : undefined,
      needs[1] ? dyScaled : undefined,
      needs[2]
        ? reduceRows(dy, { B: 1, R, C, z: y, p1: bias, expr: 'xv * (zv + p1v)', shape: gamma.shape })
        : undefined,
      needs[3] && dyScaled ? reduceRows(dyScaled, { B: 1, R, C, shape: bias.shape }) : undefined,
    ];
  });
  return out;
}
