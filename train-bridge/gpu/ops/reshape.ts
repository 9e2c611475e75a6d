// reshape(x, shape): a view on the same buffer (no copy); −1 infers one dim.
import { shapeSize, shapeString, Tensor } from '../tensor.ts';

// ---- forward
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1);
  const out = shape.map((d) => (d === -1 ? x.size / shapeSize(known) : d));
  if (shapeSize(out) !== x.size || !out.every(Number.isInteger)) {
    throw new Error(`reshape: ${shapeString(x.shape)} cannot become ${shapeString(shape)}`);
  }
  const eng = x.engine;
  x.assertLive();
  x.storage.refs++;
  const y = new Tensor(eng, out, x.storage);
  eng.adopt(y);
  // ---- gradient: the same values in the input's shape
  eng.record('reshape', [x], y, [], (dy) => [reshape(dy, x.shape)]);
  return y;
}
