// addAll([a, b, c, …]) = ((a + b) + c) + …, all of one shape: a branch sum (MobileOne's) in ⌈(n − 1) / 2⌉
// dispatches instead of n − 1, adding in the same order, so the sums are identical. Every input's gradient
// is dy itself.
import { runBroadcast, ternaryKernel } from '../kernels/elementwise.ts';
import { shapeString, type Tensor } from '../tensor.ts';
import { add } from './add.ts';

// ---- kernel
const ADD3 = ternaryKernel('add3', '(va + vb) + vc');

// ---- forward
export function addAll(xs: readonly Tensor[]): Tensor {
  const [first, ...rest] = xs;
  if (!first) throw new Error('addAll: no tensors');
  for (const t of rest) {
    if (t.size !== first.size || t.shape.some((d, i) => d !== first.shape[i]))
      throw new Error(`addAll: ${shapeString(t.shape)} and ${shapeString(first.shape)} differ`);
  }
  let acc = first;
  let i = 0;
  for (; i + 2 <= rest.length; i += 2) {
    const b = rest[i] as Tensor;
    const c = rest[i + 1] as Tensor;
    const y = runBroadcast(ADD3, [acc, b], c);
    first.engine.record('addAll', [acc, b, c], y, [], (dy, needs) => needs.map((n) => (n ? dy : undefined)));
    acc = y;
  }
  return i < rest.length ? add(acc, rest[i] as Tensor) : acc;
}
