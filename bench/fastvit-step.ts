// The FastViTHD training step the engine benches time (bench/train.ts, bench/profile-train.ts): random init,
// every parameter trainable, train-mode BatchNorm, loss Σ out·probe over a fixed pseudo-random u8 batch.
import type { Engine } from '../train-bridge/gpu/engine.ts';
import * as ops from '../train-bridge/gpu/ops/index.ts';
import { AdamW } from '../train-bridge/gpu/optim/adamw.ts';
import type { Tensor } from '../train-bridge/gpu/tensor.ts';
import { FastViTHD, type FastViTHDConfig } from '../train-bridge/model/fastvithd.ts';
import { forwardFastViTHD } from '../train-bridge/model/forward.ts';
import { GpuBackend } from '../train-bridge/model/gpu-backend.ts';
import { GpuWeights } from '../train-bridge/model/gpu-weights.ts';
import { initFastViTHD } from '../train-bridge/model/init.ts';

export interface FastVitStep {
  params: Tensor[];
  optimizer: AdamW;
  /** The scalar loss of one forward pass (call inside eng.tidy). */
  forward: () => Tensor;
}

export function fastVitStep(eng: Engine, config: FastViTHDConfig, r: number, batch: number): FastVitStep {
  const encoder = new FastViTHD(config);
  initFastViTHD(encoder, 0);
  const weights = new GpuWeights(eng);
  weights.add(encoder, { trainable: true });
  const params = weights.trainable().map((p) => p.tensor);
  const optimizer = new AdamW(params, { lr: 1e-4, weightDecay: 0 });
  const gpuOps = new GpuBackend(weights, 'train');
  const pixels = new Uint8Array(batch * r * r * 3).map((_, i) => (i * 2654435761) >>> 24);
  const images = eng.uploadU8(pixels, [batch, r, r, 3], { scale: 1 / 255 });
  const side = r / 64;
  const probe = eng.fill([batch, side, side, encoder.outChannels], 0.01);
  return {
    params,
    optimizer,
    forward: () => ops.sum(ops.mul(forwardFastViTHD(encoder, images, gpuOps), probe)),
  };
}
