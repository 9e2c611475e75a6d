// FastVLM's training objective on the WebGPU engine against PyTorch (Debian's python3-torch) running the same
// model from the same state_dict (torch_fastvlm.py): loss within 1e-4 relative, every parameter's gradient within
// 1e-3 of its largest entry. Skipped, saying so, where no Python with torch is installed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { oracleBatchTensors } from '../../../dev/fastvlm-samples.ts';
import { Engine } from '../../../train-bridge/gpu/engine.ts';
import type { FastVLM } from '../../../train-bridge/model/fastvlm.ts';
import { ALL_PARTS, FastVLMGpu, type LmBatch } from '../../../train-bridge/model/fastvlm-gpu.ts';
import { stateDictTensors } from '../../../train-bridge/model/state-dict.ts';
import { readSafetensors, toFloat32, writeSafetensors } from '../../../train-bridge/safetensors.ts';
import { oracleBatch, oracleModel, toNhwc } from './fastvlm-fixtures.ts';
import { maxAbs, maxAbsDiff } from './fixtures.ts';
import { findTorchPython } from './torch-python.ts';

const SCRIPT = fileURLToPath(new URL('./torch_fastvlm.py', import.meta.url));
const python = findTorchPython();

/** A gradient's family: its name with layer numbers dropped (model.layers.*.mlp.up_proj.weight). */
function family(name: string): string {
  return name.replace(/\.\d+\./g, '.*.');
}

describe('FastVLM objective on the engine vs PyTorch', {
  skip: python ? false : 'no python3 with torch installed',
}, () => {
  let dir = '';
  let eng: Engine;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mixforge-fastvlm-'));
    eng = await Engine.create();
  });
  after(async () => {
    eng.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  async function torchLoss(
    model: FastVLM,
    batch: LmBatch,
    images: { data: Float32Array; shape: number[] },
    visionTrain = true,
  ) {
    const extra = oracleBatchTensors(batch, images);
    const input = join(dir, 'in.safetensors');
    const output = join(dir, 'out.safetensors');
    await writeSafetensors(input, [...stateDictTensors(model), ...extra]);
    const config = { vision: model.config.vision, lm: model.config.lm, visionTrain };
    const r = spawnSync(python!, [SCRIPT, JSON.stringify(config), input, output], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return readSafetensors(output);
  }

  it('gives the same loss and gradients for every tensor family', { timeout: 900_000 }, async () => {
    const model = oracleModel(7);
    const { batch, images } = await oracleBatch(128);
    // Images per sample: before- and after-placed triplets, multi-turn, text-only, two images.
    const perSample = [0, 1, 2, 3, 4].map((b) => batch.imageSlots.filter((s) => s.sample === b).length);
    assert.deepEqual(perSample, [1, 1, 1, 0, 2]);
    assert.ok(batch.attentionMask.includes(0), 'the batch pads some sample');
    // PyTorch first: the engine's train-mode BatchNorm updates the host running statistics' GPU copies only.
    const ref = await torchLoss(model, batch, images);
    const gpu = new FastVLMGpu(eng, model, ALL_PARTS);
    const r = images.shape[2] as number;
    const img = eng.upload(toNhwc(images.data, images.shape), [images.shape[0] as number, r, r, 3]);
    const loss = eng.tidy(() => gpu.loss(batch, img));
    eng.backward(loss);
    const value = (await loss.read())[0] as number;
    const refLoss = toFloat32(ref.tensors.get('loss')!)[0] as number;
    assert.ok(Math.abs(value - refLoss) <= 1e-4 * Math.abs(refLoss), `loss ${value} vs PyTorch ${refLoss}`);

    // Per family: the largest difference over the family's largest gradient entry (a tensor whose own gradient
    // is nearly cancelled, e.g. a conv under train-mode BatchNorm, is judged at its family's scale).
    const diff = new Map<string, number>();
    const scale = new Map<string, number>();
    let compared = 0;
    const hosts = new Map(model.namedParameters());
    for (const { name } of gpu.weights.trainable()) {
      const host = hosts.get(name);
      assert.ok(host, name);
      const refGrad = ref.tensors.get(`grad.${name}`);
      assert.ok(refGrad, `PyTorch has no gradient for ${name}`);
      const expected = toFloat32(refGrad);
      const got = await gpu.weights.gradient(host);
      assert.ok(got, `the engine gave ${name} no gradient`);
      const f = family(name);
      diff.set(f, Math.max(diff.get(f) ?? 0, maxAbsDiff(got, expected)));
      scale.set(f, Math.max(scale.get(f) ?? 0, maxAbs(expected)));
      compared++;
    }
    const bad = [...diff]
      .map(([f, d]) => [f, d / (scale.get(f) as number)] as const)
      .filter(([, e]) => !(e <= 1e-3));
    assert.deepEqual(
      bad,
      [],
      `families over 1e-3: ${bad.map(([f, e]) => `${f} ${e.toExponential(2)}`).join(', ')}`,
    );
    for (const [f, s] of scale) assert.ok(s > 0, `${f}: PyTorch's gradient is all zero, which tests nothing`);
    assert.ok(compared > 100, `${compared} tensors compared`);
    img.dispose();
    loss.dispose();
    gpu.dispose();
  });

  it('stage 1: only the projector trains, its gradient flowing back through the frozen LM as in PyTorch', {
    timeout: 900_000,
  }, async () => {
    const model = oracleModel(8);
    const { batch, images } = await oracleBatch(64);
    const ref = await torchLoss(model, batch, images, false);
    const gpu = new FastVLMGpu(eng, model, { vision: false, projector: true, lm: false });
    const names = gpu.weights.trainable().map((p) => p.name);
    assert.deepEqual(names, [
      'model.mm_projector.0.weight',
      'model.mm_projector.0.bias',
      'model.mm_projector.2.weight',
      'model.mm_projector.2.bias',
    ]);
    const img = eng.upload(toNhwc(images.data, images.shape), [images.shape[0] as number, 64, 64, 3]);
    const loss = eng.tidy(() => gpu.loss(batch, img));
    eng.backward(loss);
    const value = (await loss.read())[0] as number;
    const refLoss = toFloat32(ref.tensors.get('loss')!)[0] as number;
    assert.ok(Math.abs(value - refLoss) <= 1e-4 * Math.abs(refLoss), `loss ${value} vs PyTorch ${refLoss}`);
    const hosts = new Map(model.namedParameters());
    for (const name of names) {
      const expected = toFloat32(ref.tensors.get(`grad.${name}`)!);
      const got = (await gpu.weights.gradient(hosts.get(name)!))!;
      assert.ok(maxAbs(expected) > 0, name);
      assert.ok(
        maxAbsDiff(got, expected) <= 1e-3 * maxAbs(expected),
        `${name}: ${maxAbsDiff(got, expected)}`,
      );
    }
    // Frozen tensors get no gradient at all.
    assert.equal(await gpu.weights.gradient(model.model.embedTokens.weight), undefined);
    img.dispose();
    loss.dispose();
    gpu.dispose();
  });
});
