// Initialisation follows the reference's rules and is a pure function of (seed, tensor name).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConvFFN, MHSA, RepCPE } from '../../../train-bridge/model/fastvit-blocks.ts';
import { initFastViTHD, TensorRandom } from '../../../train-bridge/model/init.ts';
import { stateDictTensors } from '../../../train-bridge/model/state-dict.ts';
import { tinyModel } from './fixtures.ts';

function stats(values: Float32Array): { mean: number; std: number; maxAbs: number } {
  let s = 0;
  let m = 0;
  for (const v of values) {
    s += v;
    m = Math.max(m, Math.abs(v));
  }
  const mean = s / values.length;
  let q = 0;
  for (const v of values) q += (v - mean) ** 2;
  return { mean, std: Math.sqrt(q / values.length), maxAbs: m };
}

describe('weight init', () => {
  it('is a pure function of the seed', () => {
    const a = stateDictTensors(tinyModel(5, false));
    const b = stateDictTensors(tinyModel(5, false));
    const c = new Map(stateDictTensors(tinyModel(6, false)));
    assert.deepEqual(a, b);
    const name = 'network.0.0.convffn.fc1.weight';
    const [, t] = a.find(([n]) => n === name)!;
    assert.notDeepEqual(t.data, c.get(name)!.data);
  });

  it('draws ConvFFN convs and linears from N(0, 0.02²), other convs from U(±1/√fan_in)', () => {
    const ffn = new ConvFFN(64, 256);
    const attention = new MHSA(64, 8);
    initFastViTHD(ffn, 1);
    initFastViTHD(attention, 1);
    for (const w of [ffn.fc1.weight, ffn.fc2.weight, ffn.conv.conv.weight, attention.qkv.weight]) {
      const s = stats(w.data);
      assert.ok(Math.abs(s.std - 0.02) < 0.002, `std ${s.std}`);
      assert.ok(Math.abs(s.mean) < 0.002, `mean ${s.mean}`);
    }
    assert.ok(ffn.fc1.bias!.data.every((v) => v === 0));
    assert.ok(attention.proj.bias!.data.every((v) => v === 0));

    const model = tinyModel(3, false);
    const cpe = model.network.items[6];
    assert.ok(cpe instanceof RepCPE);
    const peConv = cpe.pe!;
    const bound = 1 / Math.sqrt(49); // depthwise 7×7: fan_in = 1·7·7
    const s = stats(peConv.weight.data);
    assert.ok(s.maxAbs <= bound && s.maxAbs > 0.9 * bound, `max ${s.maxAbs} vs bound ${bound}`);
    assert.ok(Math.abs(s.std - bound / Math.sqrt(3)) < 0.1 * bound);
    assert.ok(stats(peConv.bias!.data).maxAbs <= bound);
  });

  it('sets BN and LayerNorm to identity and layer scales to 1e-5', () => {
    const state = new Map(stateDictTensors(tinyModel(3, false)));
    const every = (name: string, v: number) => {
      const t = state.get(name);
      assert.ok(t, name);
      assert.ok(
        [...t.data].every((x) => x === v),
        name,
      );
    };
    every('patch_embed.2.rbr_skip.weight', 1);
    every('patch_embed.2.rbr_skip.bias', 0);
    every('patch_embed.2.rbr_skip.running_mean', 0);
    every('patch_embed.2.rbr_skip.running_var', 1);
    every('network.7.0.norm.weight', 1);
    every('network.7.0.norm.bias', 0);
    every('network.0.0.layer_scale', Math.fround(1e-5));
    every('network.0.0.token_mixer.layer_scale', Math.fround(1e-5));
    every('network.10.0.layer_scale_2', Math.fround(1e-5));
    assert.deepEqual([...state.get('conv_exp.rbr_conv.0.bn.num_batches_tracked')!.data], [0n]);
  });

  it('gives uniform and normal streams with the right moments', () => {
    const r = new TensorRandom(1, 'test', 'x');
    const n = 20000;
    const u = new Float32Array(n);
    const g = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      u[i] = r.nextUniform();
      g[i] = r.nextNormal();
    }
    assert.ok(Math.abs(stats(u).mean - 0.5) < 0.01);
    assert.ok(Math.abs(stats(u).std - Math.sqrt(1 / 12)) < 0.01);
    assert.ok(Math.abs(stats(g).mean) < 0.03);
    assert.ok(Math.abs(stats(g).std - 1) < 0.03);
  });
});
