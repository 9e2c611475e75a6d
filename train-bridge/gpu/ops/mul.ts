// mul(a, b) = a ⊙ b, b broadcasting over a's leading dims (per-channel layer scale is mul(x, γ[C])).
import { binaryKernel, runBinary } from '../kernels/elementwise.ts';
import { reduceRows } from '../kernels/reduce-rows.ts';
import type { Tensor } from '../tensor.ts';
import { checkBroadcast } from './broadcast.ts';

// ---- kernel
const MUL = binaryKernel('mul', 'va * vb');

// ---- forward
export function mul(a: Tensor, b: Tensor): Tensor {
  checkBroadcast('mul', a, b);
  const y = runBinary(MUL, a, b);
  a.engine.record('mul', [a, b], y, [a, b], (dy, needs) => [
    needs[0] ? mulGradA(dy, b) : undefined,
    needs[1] ? mulGradB(dy, a, b) : undefined,
  ]);
  return y;
}

// ---- gradient (shared with addScaled, whose y ⊙ γ term is a mul)
export function mulGradA(dy: Tensor, b: Tensor): Tensor {
  return runBinary(MUL, dy, b);
}

export function mulGradB(dy: Tensor, a: Tensor, b: Tensor): Tensor {
  if (b.size === a.size) return runBinary(MUL, dy, a);
  // Σ over the broadcast rows of dy ⊙ a, fused into the column reduction.
  return reduceRows(dy, { B: 1, R: a.size / b.size, C: b.size, z: a, expr: 'xv * zv', shape: b.shape });
}
