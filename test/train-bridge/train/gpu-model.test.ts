// FastViTHD on the WebGPU engine against the CPU reference (the oracle): forward of the train-time form in eval
// and in train mode (batch statistics, running statistics updated), and gradients of the whole model against
// central finite differences of the CPU forward.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Engine } from '../../../train-bridge/gpu/engine.ts';
import * as ops from '../../../train-bridge/gpu/ops/index.ts';
import { CpuBackend } from '../../../train-bridge/model/cpu-backend.ts';
import { FastViTHD, modelConfig } from '../../../train-bridge/model/fastvithd.ts';
import { forwardFastViTHD } from '../../../train-bridge/model/forward.ts';
import { GpuBackend } from '../../../train-bridge/model/gpu-backend.ts';
import { GpuWeights } from '../../../train-bridge/model/gpu-weights.ts';
import { HostTensor } from '../../../train-bridge/model/host-tensor.ts';
import { initFastViTHD, TensorRandom } from '../../../train-bridge/model/init.ts';

let eng: Engine;
before(async () => {
  eng = await Engine.create();
});
after(() => eng.destroy());

/** Layer scales at 0.5 (not 1e-5) so that every block changes the output measurably. */
function tinyModel(seed: number): FastViTHD {
  const model = new FastViTHD(modelConfig('fastvithd-tiny'));
  initFastViTHD(model, seed, 0.5);
  return model;
}

function images(n: number, r: number, seed: number): { nchw: HostTensor; nhwc: Float32Array } {
  const rng = new TensorRandom(seed, 'test-images', 'x');
  const nchw = new HostTensor([n, 3, r, r]);
  for (let i = 0; i < nchw.numel; i++) nchw.data[i] = rng.nextUniform();
  return { nchw, nhwc: toNhwc(nchw) };
}

function toNhwc(t: HostTensor): Float32Array {
  const [n, c, h, w] = t.shape;
  const out = new Float32Array(t.numel);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let p = 0; p < h * w; p++) out[(b * h * w + p) * c + ch] = t.data[(b * c + ch) * h * w + p];
  return out;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('GPU forward of the train-time form matches the CPU reference in eval mode', async () => {
  const model = tinyModel(3);
  // Non-trivial running statistics, so eval-mode BN is not the identity.
  const rng = new TensorRandom(3, 'test-bn', 'stats');
  for (const [name, t] of model.namedBuffers()) {
    if (!(t instanceof HostTensor)) continue;
    for (let i = 0; i < t.numel; i++)
      t.data[i] = name.endsWith('running_var') ? 0.5 + rng.nextUniform() : 0.2 * (rng.nextUniform() - 0.5);
  }
  const { nchw, nhwc } = images(2, 64, 1);
  const ref = toNhwc(forwardFastViTHD(model, nchw, new CpuBackend('eval')));
  const weights = new GpuWeights(eng);
  weights.add(model, { trainable: false });
  const x = eng.upload(nhwc, [2, 64, 64, 3]);
  const y = eng.tidy(() => forwardFastViTHD(model, x, new GpuBackend(weights, 'eval')));
  assert.deepEqual(y.shape, [2, 1, 1, 256]);
  const out = await y.read();
  assert.ok(maxAbs(ref) > 1e-3, 'the output is not trivially small');
  assert.ok(maxDiff(out, ref) <= 1e-4 * maxAbs(ref), `max diff ${maxDiff(out, ref)} vs scale ${maxAbs(ref)}`);
  x.dispose();
  y.dispose();
});

test('train mode: batch statistics, and running statistics updated as PyTorch does', async () => {
  const model = tinyModel(4);
  const { nchw, nhwc } = images(2, 128, 2);
  const weights = new GpuWeights(eng);
  weights.add(model, { trainable: true });
  const x = eng.upload(nhwc, [2, 128, 128, 3]);
  const y = eng.tidy(() => forwardFastViTHD(model, x, new GpuBackend(weights, 'train')));
  const out = await y.read();
  eng.clearTape();
  // The CPU forward updates the host running statistics; the GPU ones are compared after download.
  const ref = toNhwc(forwardFastViTHD(model, nchw, new CpuBackend('train')));
  assert.ok(maxDiff(out, ref) <= 2e-4 * maxAbs(ref), `max diff ${maxDiff(out, ref)} vs scale ${maxAbs(ref)}`);
  const cpuStats = [...model.namedBuffers()]
    .filter(([n]) => n.endsWith('running_var') || n.endsWith('running_mean'))
    .map(([n, t]) => [n, (t as HostTensor).data.slice()] as const);
  await weights.download();
  const byName = new Map(model.namedBuffers());
  for (const [name, cpu] of cpuStats) {
    const gpu = (byName.get(name) as HostTensor).data;
    assert.ok(maxDiff(gpu, cpu) <= 1e-4 * Math.max(1, maxAbs(cpu)), `${name}: ${maxDiff(gpu, cpu)}`);
  }
  // Both forwards counted one batch per BN (CPU on the host counter, GPU adapter likewise): 2 in all.
  assert.equal((byName.get('conv_exp.rbr_conv.0.bn.num_batches_tracked') as { value: bigint }).value, 2n);
  x.dispose();
  y.dispose();
});

test('GPU gradients of the whole model (train mode) match central differences of the CPU forward', async () => {
  const model = tinyModel(5);
  const n = 2;
  const r = 128;
  const { nchw, nhwc } = images(n, r, 3);
  // L = Σ out ⊙ P with a fixed random P: every output element contributes.
  const probe = new Float32Array(n * 2 * 2 * 256);
  const prng = new TensorRandom(5, 'test-probe', 'p');
  for (let i = 0; i < probe.length; i++) probe[i] = prng.nextUniform() - 0.5;
  const cpuLoss = () => {
    const out = toNhwc(forwardFastViTHD(model, nchw, new CpuBackend('train')));
    let s = 0;
    for (let i = 0; i < out.length; i++) s += out[i] * probe[i];
    return s;
  };
  const weights = new GpuWeights(eng);
  weights.add(model, { trainable: true });
  const x = eng.upload(nhwc, [n, r, r, 3]);
  const p = eng.upload(probe, [n, 2, 2, 256]);
  const loss = eng.tidy(() =>
    ops.sum(ops.mul(forwardFastViTHD(model, x, new GpuBackend(weights, 'batch')), p)),
  );
  eng.backward(loss);
  const gpuLoss = (await loss.read())[0];
  assert.ok(Math.abs(gpuLoss - cpuLoss()) <= 1e-4 * Math.max(1, Math.abs(gpuLoss)));
  // One tensor from each kind of block: stem conv, RepMixer layer scale, patch-embed large kernel, attention
  // qkv (split on the GPU), LayerNorm, BN affine, and the SE gate of the final expansion.
  const picks = [
    'patch_embed.0.rbr_conv.0.conv.weight',
    'network.0.0.token_mixer.layer_scale',
    'network.3.proj.0.lkb_origin.conv.weight',
    'network.7.0.token_mixer.qkv.weight',
    'network.7.0.norm.weight',
    'network.10.0.convffn.conv.bn.bias',
    'conv_exp.se.reduce.weight',
  ];
  const params = new Map(model.namedParameters());
  for (const name of picks) {
    const host = params.get(name);
    assert.ok(host, `no parameter ${name}`);
    const grad = await weights.gradient(host);
    assert.ok(grad, `${name} got no gradient`);
    // The element with the largest gradient among the first 200: a difference well above rounding noise.
    let index = 0;
    for (let i = 1; i < Math.min(200, grad.length); i++)
      if (Math.abs(grad[i]) > Math.abs(grad[index])) index = i;
    // A step that moves the loss by about 1e-3: large enough over rounding noise, small enough that train-mode
    // BN (8 values per channel at the last stage) does not curve the difference.
    const h = Math.min(1e-2, Math.max(1e-4, 1e-3 / Math.abs(grad[index])));
    const v = host.data[index];
    host.data[index] = v + h;
    const up = cpuLoss();
    host.data[index] = v - h;
    const down = cpuLoss();
    host.data[index] = v;
    const fd = (up - down) / (2 * h);
    const g = grad[index];
    assert.ok(
      Math.abs(g - fd) <= 3e-2 * Math.abs(fd) + 1e-5,
      `${name}[${index}]: GPU ${g}, finite difference ${fd}`,
    );
  }
  for (const t of [x, p, loss]) t.dispose();
});
