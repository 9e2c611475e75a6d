// Shape rule shared by the binary ops: b equals a's shape or a trailing suffix of it ([C] over NHWC,
// [1] as a scalar); the gradient for b sums the incoming gradient over the broadcast leading dims.
import { isSuffixShape } from '../kernels/elementwise.ts';
import { reduceRows } from '../kernels/reduce-rows.ts';
import { shapeString, type Tensor } from '../tensor.ts';

export function checkBroadcast(op: string, a: Tensor, b: Tensor): void {
  if (!isSuffixShape(a.shape, b.shape)) {
    throw new Error(
      `${op}: ${shapeString(b.shape)} does not broadcast onto ${shapeString(a.shape)} (trailing dims only)`,
    );
  }
  if (a.engine !== b.engine) throw new Error(`${op}: tensors from different engines`);
}

/** Sums g (a's shape) down to b's shape; g itself when no broadcast happened. */
export function reduceToShape(g: Tensor, shape: readonly number[], size: number): Tensor {
  if (size === g.size) return g;
  return reduceRows(g, { B: 1, R: g.size / size, C: size, shape });
}
