// linear(x, w, bias) = x·w + bias over the last dim: a 1×1 convolution in NHWC (x [..., K], w [K, N]).
import { shapeString, type Tensor } from '../tensor.ts';
import { add } from './add.ts';
import { matmul } from './matmul.ts';
import { reshape } from './reshape.ts';

// A composite op: its gradient comes from reshape, matmul and add.
export function linear(x: Tensor, w: Tensor, bias?: Tensor): Tensor {
  const K = x.shape.at(-1) as number;
  if (w.rank !== 2 || w.shape[0] !== K)
    throw new Error(`linear: ${shapeString(x.shape)} · ${shapeString(w.shape)}`);
  const N = w.shape[1] as number;
  const y2 = matmul(reshape(x, [x.size / K, K]), w);
  const y = bias ? add(y2, bias) : y2;
  return reshape(y, [...x.shape.slice(0, -1), N]);
}
