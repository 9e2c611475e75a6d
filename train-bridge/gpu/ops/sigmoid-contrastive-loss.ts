// The SigLIP loss: logits = t·(img·txtᵀ) + b with learnable t and b; every (image, text) pair is a binary
// problem, positive on the diagonal: loss = −(1/N)·Σ_ij log σ(ℓ_ij·z_ij), ℓ = +1 if i = j else −1.

import type { KernelDef } from '../kernel.ts';
import { grid1d } from '../kernels/elementwise.ts';
import { reduceRows } from '../kernels/reduce-rows.ts';
import { shapeString, type Tensor } from '../tensor.ts';
import { add } from './add.ts';
import { matmul } from './matmul.ts';
import { mul } from './mul.ts';

// ---- kernels
/** −log σ(ℓz) = softplus(−ℓz), computed without overflow. */
const PAIR_LOSS: KernelDef = {
  name: 'siglip_pair_loss',
  uniforms: ['rows', 'cols'],
  storage: [
    { name: 'z', access: 'read' },
    { name: 'loss', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= P.rows * P.cols) { return; }
  let l = select(-1.0, 1.0, i / P.cols == i % P.cols);
  let u = -l * z[i];
  loss[i] = max(u, 0.0) + log(1.0 + exp(-abs(u)));
}`,
};

/** d/dz = −ℓ·σ(−ℓz)·dy/N */
const PAIR_GRAD: KernelDef = {
  name: 'siglip_pair_loss_grad',
  uniforms: ['rows', 'cols', 'invN:f32'],
  storage: [
    { name: 'z', access: 'read' },
    { name: 'dy', access: 'read' },
    { name: 'dz', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= P.rows * P.cols) { return; }
  let l = select(-1.0, 1.0, i / P.cols == i % P.cols);
  let s = 1.0 / (1.0 + exp(l * z[i]));
  dz[i] = -l * s * dy[0] * P.invN;
}`,
};

// ---- forward (the fused part: logits → scalar loss)
export function sigmoidPairLoss(z: Tensor): Tensor {
  if (z.rank !== 2) throw new Error(`sigmoidPairLoss: logits ${shapeString(z.shape)} must be [N, M]`);
  const eng = z.engine;
  const [rows, cols] = z.shape as [number, number];
  const per = eng.empty(z.shape);
  eng.dispatch(PAIR_LOSS, [z.range(), per.range()], { rows, cols }, grid1d(eng, z.size));
  const loss = reduceRows(per, { B: 1, R: z.size, C: 1, scale: 1 / rows, shape: [1] });
  per.dispose();
  eng.record('sigmoidPairLoss', [z], loss, [z], (dy) => {
    // ---- gradient
    const dz = eng.empty(z.shape);
    eng.dispatch(
      PAIR_GRAD,
      [z.range(), dy.range(), dz.range()],
      { rows, cols, invN: 1 / rows },
      grid1d(eng, z.size),
    );
    return [dz];
  });
  return loss;
}

/** img [N, D], txt [N, D] (normalised embeddings), t [1] and b [1] → scalar loss. */
export function sigmoidContrastiveLoss(img: Tensor, txt: Tensor, t: Tensor, b: Tensor): Tensor {
  if (img.rank !== 2 || txt.rank !== 2 || img.shape[1] !== txt.shape[1] || t.size !== 1 || b.size !== 1) {
    throw new Error(
      `sigmoidContrastiveLoss: img ${shapeString(img.shape)}, txt ${shapeString(txt.shape)}, t ${shapeString(t.shape)}, b ${shapeString(b.shape)}`,
    );
  }
  return sigmoidPairLoss(add(mul(matmul(img, txt, { transB: true }), t), b));
}
