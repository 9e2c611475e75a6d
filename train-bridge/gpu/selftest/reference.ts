// TF.js formulas shared by several selftest families.
import type * as TF from '@tensorflow/tfjs';
import type { Tf } from './harness.ts';

export function erfGelu(tf: Tf, x: TF.Tensor): TF.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
}
