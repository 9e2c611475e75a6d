// siluMul(gate, up) = silu(gate) ⊙ up with silu(g) = g·σ(g): the SwiGLU of a Qwen2 MLP
// (down(silu(gate(x)) ⊙ up(x))), fused so the silu activation is never stored.
import { binaryKernel, runBinary } from '../kernels/elementwise.ts';
import { shapeString, type Tensor } from '../tensor.ts';

// ---- kernels
const SILU = 'va / (1.0 + exp(-va))';
const SILU_MUL = binaryKernel('silu_mul', `${SILU} * vb`);
/** d silu(g)/dg = σ(g)·(1 + g·(1 − σ(g))), times vb. */
const DSILU_MUL = binaryKernel(
  'dsilu_mul',
  'vb * (1.0 / (1.0 + exp(-va))) * (1.0 + va * (1.0 - 1.0 / (1.0 + exp(-va))))',
);
const MUL = binaryKernel('mul', 'va * vb');

// ---- forward
export function siluMul(gate: Tensor, up: Tensor): Tensor {
  if (gate.size !== up.size || gate.rank !== up.rank || gate.shape.some((d, i) => d !== up.shape[i])) {
    throw new Error(`siluMul: gate ${shapeString(gate.shape)} and up ${shapeString(up.shape)} differ`);
  }
  const y = runBinary(SILU_MUL, gate, up);
  gate.engine.record('siluMul', [gate, up], y, [gate, up], (dy, needs) => [
    // ---- gradient: dgate = dy·up·silu'(gate), dup = dy·silu(gate)
    needs[0] ? runBinary(DSILU_MUL, gate, runBinary(MUL, dy, up)) : undefined,
    needs[1] ? runBinary(SILU_MUL, gate, dy) : undefined,
  ]);
  return y;
}
