// addScaled(x, y, γ) = x + y ⊙ γ, γ broadcasting over y's leading dims: a residual with layer scale in one
// dispatch instead of mul then add. Same gradients as the two ops (x: dy, y: dy ⊙ γ, γ: Σ dy ⊙ y).
import { runBroadcast, ternaryKernel } from '../kernels/elementwise.ts';
import { shapeString, type Tensor } from '../tensor.ts';
import { checkBroadcast } from './broadcast.ts';
import { mulGradA, mulGradB } from './mul.ts';

// ---- kernel
// The product is rounded before the add, as in mul then add (no fused multiply-add).
const ADD_SCALED = ternaryKernel('add_scaled', 'va + (vb * vc)');

// ---- forward
export function addScaled(x: Tensor, y: Tensor, gamma: Tensor): Tensor {
  if (x.size !== y.size || x.rank !== y.rank || x.shape.some((d, i) => d !== y.shape[i]))
    throw new Error(`addScaled: x ${shapeString(x.shape)} and y ${shapeString(y.shape)} differ`);
  checkBroadcast('addScaled', y, gamma);
  const out = runBroadcast(ADD_SCALED, [x, y], gamma);
  x.engine.record('addScaled', [x, y, gamma], out, [y, gamma], (dy, needs) => [
    needs[0] ? dy : undefined,
    needs[1] ? mulGradA(dy, gamma) : undefined,
    needs[2] ? mulGradB(dy, y, gamma) : undefined,
  ]);
  return out;
}
