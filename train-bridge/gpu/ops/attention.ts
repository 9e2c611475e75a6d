// attention(q, k, v, {scale}) = softmax(q·kᵀ·scale)·v over [B, L, D] tensors (heads folded into B).
// A composite op: its gradient is the chain of matmul's and softmax's rules.
import { shapeString, type Tensor } from '../tensor.ts';
import { matmul } from './matmul.ts';
import { softmax } from './softmax.ts';

export function attention(q: Tensor, k: Tensor, v: Tensor, o: { scale?: number } = {}): Tensor {
  if (
    q.rank !== 3 ||
    k.rank !== 3 ||
    v.rank !== 3 ||
    q.shape[2] !== k.shape[2] ||
    k.shape[1] !== v.shape[1]
  ) {
    throw new Error(
      `attention: q ${shapeString(q.shape)}, k ${shapeString(k.shape)}, v ${shapeString(v.shape)}`,
    );
  }
  const scale = o.scale ?? 1 / Math.sqrt(q.shape[2] as number);
  const p = softmax(matmul(q, k, { transB: true, alpha: scale }));
  return matmul(p, v);
}
