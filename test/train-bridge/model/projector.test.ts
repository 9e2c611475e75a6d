// The FastVLM projector (mlp2x_gelu): LLaVA's tensor names and shapes, its forward on encoder tokens, a checkpoint
// round trip under the "mm_projector." prefix.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import erf from '@stdlib/math-base-special-erf';
import { CpuBackend, forwardCpu } from '../../../train-bridge/model/cpu-backend.ts';
import { forwardProjector } from '../../../train-bridge/model/forward.ts';
import { countParameters } from '../../../train-bridge/model/module.ts';
import { FastVLMProjector, initProjector, PROJECTOR_PREFIX } from '../../../train-bridge/model/projector.ts';
import { loadStateDict, stateDictTensors } from '../../../train-bridge/model/state-dict.ts';
import { decodeSafetensors, encodeSafetensors } from '../../../train-bridge/safetensors.ts';
import { randomInput, tinyModel } from './fixtures.ts';

describe('FastVLM projector', () => {
  it('is Linear(3072→d), GELU, Linear(d→d) named mm_projector.{0,2}.{weight,bias}', () => {
    const p = new FastVLMProjector(3072, 896);
    const names = stateDictTensors(p, PROJECTOR_PREFIX).map(([n, t]) => `${n}:${t.shape.join('x')}`);
    assert.deepEqual(names, [
      'mm_projector.0.weight:896x3072',
      'mm_projector.0.bias:896',
      'mm_projector.2.weight:896x896',
      'mm_projector.2.bias:896',
    ]);
    assert.equal(countParameters(p), 3072 * 896 + 896 + 896 * 896 + 896);
    assert.throws(() => new FastVLMProjector(3072, 0), /positive integers/);
  });

  it('maps each encoder position to fc2(gelu(fc1(token)))', () => {
    const encoder = tinyModel(31);
    const projector = new FastVLMProjector(256, 12);
    initProjector(projector, 31);
    const embedding = forwardCpu(encoder, randomInput([2, 3, 128, 128], 3));
    assert.deepEqual(embedding.shape, [2, 256, 2, 2]);
    const tokens = forwardProjector(projector, embedding, new CpuBackend());
    assert.deepEqual(tokens.shape, [2, 4, 12]);
    // Token 3 of image 1 by hand: channel vector at pixel (1, 1).
    const v = Array.from({ length: 256 }, (_, c) => embedding.data[(1 * 256 + c) * 4 + 3]);
    const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
    const w1 = projector.fc1.weight.data;
    const hidden = Array.from({ length: 12 }, (_, o) =>
      gelu(projector.fc1.bias!.data[o] + v.reduce((s, x, i) => s + x * w1[o * 256 + i], 0)),
    );
    const w2 = projector.fc2.weight.data;
    for (let o = 0; o < 12; o++) {
      const want = projector.fc2.bias!.data[o] + hidden.reduce((s, x, i) => s + x * w2[o * 12 + i], 0);
      assert.ok(Math.abs(tokens.data[(1 * 4 + 3) * 12 + o] - want) < 1e-5);
    }
    // Default nn.Linear init: U(±1/√fan_in), biases too.
    assert.ok(w1.every((x) => Math.abs(x) <= 1 / 16) && w1.some((x) => Math.abs(x) > 0.9 / 16));
    assert.ok(projector.fc1.bias!.data.some((x) => x !== 0));
  });

  it('round-trips through a checkpoint under the LLaVA prefix', () => {
    const p = new FastVLMProjector(16, 8);
    initProjector(p, 2);
    const q = new FastVLMProjector(16, 8);
    const file = decodeSafetensors(encodeSafetensors(stateDictTensors(p, `model.${PROJECTOR_PREFIX}`)));
    assert.equal(loadStateDict(q, file, { prefix: `model.${PROJECTOR_PREFIX}` }).loaded, 4);
    assert.deepEqual(q.fc2.weight.data, p.fc2.weight.data);
  });
});
