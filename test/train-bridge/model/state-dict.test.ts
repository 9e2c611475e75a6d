// Checkpoints: a model saved to .safetensors and loaded back is identical (tensors and outputs), in either form;
// FastVLM-style prefixed and half-precision files load; mismatches are reported by name.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { forwardCpu } from '../../../train-bridge/model/cpu-backend.ts';
import { FastViTHD, modelConfig } from '../../../train-bridge/model/fastvithd.ts';
import { reparameterize } from '../../../train-bridge/model/reparameterize.ts';
import {
  loadFastViTHD,
  loadStateDict,
  locateFastViTHD,
  saveFastViTHD,
  stateDictTensors,
} from '../../../train-bridge/model/state-dict.ts';
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensorsHeader,
  type TensorToWrite,
  writeSafetensors,
} from '../../../train-bridge/safetensors.ts';
import { maxAbsDiff, randomInput, tinyModel } from './fixtures.ts';

function assertSameState(a: FastViTHD, b: FastViTHD): void {
  const sa = stateDictTensors(a);
  const sb = new Map(stateDictTensors(b));
  assert.equal(sa.length, sb.size);
  for (const [name, t] of sa) {
    const u = sb.get(name);
    assert.ok(u, name);
    assert.deepEqual(u.shape, t.shape, name);
    assert.deepEqual(u.data, t.data, name);
  }
}

/** float32 → bfloat16 bits, round to nearest even (what torch's .to(bfloat16) does). */
function toBF16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  return Uint16Array.from(bits, (b) => (b + 0x7fff + ((b >>> 16) & 1)) >>> 16);
}

describe('FastViTHD checkpoints', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mixforge-ckpt-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips the train form bit-exactly, BN counters included', async () => {
    const model = tinyModel(21);
    forwardCpu(model, randomInput([2, 3, 64, 64], 1), 'train'); // running stats and counters move
    const path = join(dir, 'train.safetensors');
    await saveFastViTHD(path, model, { step: '1' });
    const header = await readSafetensorsHeader(path);
    assert.deepEqual(header.metadata, {
      format: 'pt',
      'mixforge.model': 'fastvithd-tiny',
      'mixforge.form': 'train',
      step: '1',
    });
    assert.deepEqual(header.tensors.get('patch_embed.0.rbr_conv.0.bn.num_batches_tracked'), {
      dtype: 'I64',
      shape: [],
    });
    assert.deepEqual(header.tensors.get('network.0.0.layer_scale'), { dtype: 'F32', shape: [8, 1, 1] });
    const loaded = await loadFastViTHD(path, modelConfig('fastvithd-tiny'));
    assert.equal(loaded.convExp.inferenceMode, false);
    assertSameState(model, loaded);
    assert.equal(loaded.patchEmbed.items[0].rbrConv[0].bn.numBatchesTracked.value, 1n);
    const x = randomInput([1, 3, 64, 64], 2);
    assert.equal(maxAbsDiff(forwardCpu(model, x).data, forwardCpu(loaded, x).data), 0);
  });

  it('round-trips the folded form and rebuilds it in inference mode', async () => {
    const model = tinyModel(22);
    reparameterize(model);
    const path = join(dir, 'folded.safetensors');
    await saveFastViTHD(path, model);
    const loaded = await loadFastViTHD(path, modelConfig('fastvithd-tiny'));
    assert.equal(loaded.convExp.inferenceMode, true);
    assertSameState(model, loaded);
  });

  it('loads a FastVLM-style checkpoint: prefixed names, bfloat16, extra tensors around the encoder', async () => {
    const model = tinyModel(23);
    reparameterize(model);
    const prefix = 'model.vision_tower.vision_tower.model.';
    const tensors: Array<[string, TensorToWrite]> = stateDictTensors(model, prefix).map(([name, t]) => [
      name,
      t.dtype === 'F32' ? { dtype: 'BF16', shape: t.shape, data: toBF16(t.data as Float32Array) } : t,
    ]);
    tensors.push([`${prefix}head.proj`, { dtype: 'BF16', shape: [256, 4], data: new Uint16Array(1024) }]);
    tensors.push([
      'model.mm_projector.0.weight',
      { dtype: 'BF16', shape: [2, 256], data: new Uint16Array(512) },
    ]);
    const names = tensors.map(([n]) => n);
    assert.deepEqual(locateFastViTHD(names), { prefix, inferenceMode: true });
    const path = join(dir, 'fastvlm.safetensors');
    await writeSafetensors(path, tensors, { format: 'pt' });
    // The encoder's own head is not part of our model: strict loading under the prefix names it.
    await assert.rejects(
      loadFastViTHD(path, modelConfig('fastvithd-tiny')),
      /unexpected model\.vision_tower\.vision_tower\.model\.head\.proj/,
    );
    const file = decodeSafetensors(encodeSafetensors(tensors));
    const target = new FastViTHD(modelConfig('fastvithd-tiny'), { inferenceMode: true });
    const report = loadStateDict(target, file, { prefix, strict: false });
    assert.deepEqual(report.unexpected, [`${prefix}head.proj`]);
    assert.deepEqual(report.missing, []);
    // bfloat16 keeps 8 bits of mantissa: relative error ≤ 2^-8.
    const w = model.convExp.reparamConv!.weight.data;
    const v = target.convExp.reparamConv!.weight.data;
    for (let i = 0; i < w.length; i++) assert.ok(Math.abs(v[i] - w[i]) <= Math.abs(w[i]) / 256 + 1e-30);
  });

  it('names what does not fit: missing tensors, wrong shapes, wrong form', () => {
    const model = tinyModel(24);
    const full = stateDictTensors(model);
    const without = decodeSafetensors(
      encodeSafetensors(full.filter(([n]) => n !== 'network.7.0.token_mixer.qkv.weight')),
    );
    assert.throws(
      () => loadStateDict(tinyModel(1), without),
      /missing network\.7\.0\.token_mixer\.qkv\.weight/,
    );
    const reshaped = full.map(([n, t]): [string, TensorToWrite] =>
      n === 'network.0.0.layer_scale' ? [n, { ...t, shape: [8] }] : [n, t],
    );
    assert.throws(
      () => loadStateDict(tinyModel(1), decodeSafetensors(encodeSafetensors(reshaped))),
      /"network\.0\.0\.layer_scale" has shape \[8\], the model expects \[8, 1, 1\]/,
    );
    const folded = new FastViTHD(modelConfig('fastvithd-tiny'), { inferenceMode: true });
    assert.throws(
      () => loadStateDict(folded, decodeSafetensors(encodeSafetensors(full))),
      /missing patch_embed\.0\.reparam_conv\.weight/,
    );
  });
});
