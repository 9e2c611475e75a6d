// Shared test fixtures for the FastViTHD model: seeded models whose BatchNorm statistics and layer scales are far
// from their init values (so folding tests exercise every branch), and seeded random inputs.
import { FastViTHD, modelConfig } from '../../../train-bridge/model/fastvithd.ts';
import { HostTensor } from '../../../train-bridge/model/host-tensor.ts';
import { fillUniform, initFastViTHD, TensorRandom } from '../../../train-bridge/model/init.ts';
import { BatchNorm2d } from '../../../train-bridge/model/layers.ts';
import type { Module } from '../../../train-bridge/model/module.ts';

/** BN γ ∈ [0.5, 1.5), β ∈ [-0.5, 0.5), μ ∈ [-0.2, 0.2), σ² ∈ [0.5, 1.5); layer scales ∈ [-1, 1). */
export function perturbStatistics(root: Module, seed: number): void {
  for (const [name, m] of root.namedModules()) {
    if (!(m instanceof BatchNorm2d)) continue;
    const r = new TensorRandom(seed, 'test-bn', name);
    for (let i = 0; i < m.numFeatures; i++) {
      m.weight.data[i] = 0.5 + r.nextUniform();
      m.bias.data[i] = r.nextUniform() - 0.5;
      m.runningMean.data[i] = 0.4 * (r.nextUniform() - 0.5);
      m.runningVar.data[i] = 0.5 + r.nextUniform();
    }
  }
  for (const [name, t] of root.namedParameters()) {
    if (/layer_scale(_[12])?$/.test(name)) fillUniform(t, new TensorRandom(seed, 'test-ls', name), 1);
  }
}

export function randomInput(shape: number[], seed: number, bound = 1): HostTensor {
  const x = new HostTensor(shape);
  fillUniform(x, new TensorRandom(seed, 'test-input', shape.join('x')), bound);
  return x;
}

export function tinyModel(seed = 1, perturbed = true): FastViTHD {
  const m = new FastViTHD(modelConfig('fastvithd-tiny'));
  initFastViTHD(m, seed);
  if (perturbed) perturbStatistics(m, seed);
  return m;
}

export function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new RangeError(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
