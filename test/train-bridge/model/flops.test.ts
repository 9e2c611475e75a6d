// FLOPs from the module tree against a closed-form count written out per block, and against the multiply-adds the
// CPU reference forward actually performs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { CpuBackend } from '../../../train-bridge/model/cpu-backend.ts';
import { FastViTHD, modelConfig } from '../../../train-bridge/model/fastvithd.ts';
import { modelInfo, profileForward } from '../../../train-bridge/model/flops.ts';
import { forwardFastViTHD } from '../../../train-bridge/model/forward.ts';
import { reparameterize } from '../../../train-bridge/model/reparameterize.ts';
import { randomInput, tinyModel } from './fixtures.ts';

/** Multiply-accumulates per image of FastViTHD at R×R (R a multiple of 64), block by block. */
function closedFormMacs(r: number, train: boolean): number {
  const widths = [96, 192, 384, 768, 1536];
  const depths = [2, 12, 24, 4, 2];
  let macs = 0;
  // Stem: 3×3 s2 dense, 3×3 s2 depthwise, 1×1 (no scale branches).
  macs += 96 * (r / 2) ** 2 * 3 * 9 + 96 * (r / 4) ** 2 * 9 + 96 * 96 * (r / 4) ** 2;
  let side = r / 4;
  for (let i = 0; i < 5; i++) {
    const c = widths[i];
    const s = side * side;
    const ffn = 49 * c * s + 8 * c * c * s;
    if (i >= 3) macs += 49 * c * s; // RepCPE
    const block =
      i < 3
        ? (train ? 9 * c * s + c * s : 9 * c * s) + ffn // RepMixer: 3×3 dw (+ 1×1 dw scale) then ConvFFN
        : 3 * c * c * s + 2 * s * s * c + c * c * s + ffn; // qkv, q·kᵀ and attn·v, proj, ConvFFN
    macs += depths[i] * block;
    if (i < 4) {
      side /= 2;
      const s2 = side * side;
      macs += 2 * c * 49 * s2 + (train ? 2 * c * 9 * s2 : 0) + 4 * c * c * s2; // 7×7 (+3×3) dw, then 1×1
    }
  }
  const s = side * side;
  macs += 3072 * 9 * s + (train ? 3072 * s : 0) + 2 * 3072 * 192; // conv_exp (+ scale), SE
  return macs;
}

describe('FLOPs', () => {
  it('equal 2 × the closed-form multiply-adds of FastViTHD in both forms', () => {
    const trainForm = new FastViTHD(modelConfig('fastvithd'));
    const folded = new FastViTHD(modelConfig('fastvithd'), { inferenceMode: true });
    for (const r of [256, 768, 1024]) {
      assert.equal(profileForward(trainForm, r).flops, 2 * closedFormMacs(r, true), `train ${r}`);
      assert.equal(profileForward(folded, r).flops, 2 * closedFormMacs(r, false), `inference ${r}`);
    }
  });

  it('count exactly the multiply-adds the CPU reference forward performs (fastvithd-tiny)', () => {
    const model = tinyModel(1);
    const x = randomInput([2, 3, 64, 64], 1);
    for (const stage of ['train form', 'folded'] as const) {
      if (stage === 'folded') reparameterize(model);
      const ops = new CpuBackend('eval');
      forwardFastViTHD(model, x, ops);
      const flopsPerImage = (2 * ops.macs) / x.shape[0];
      assert.equal(flopsPerImage, profileForward(model, 64).flops, stage);
    }
  });

  it('modelInfo reports what `mixforge model info --json` prints', () => {
    const info = modelInfo('fastvithd', 1024);
    assert.deepEqual(
      {
        params: info.params,
        paramsInference: info.paramsInference,
        tokens: info.tokens,
        channels: info.channels,
      },
      { params: 122_875_584, paramsInference: 122_714_208, tokens: 256, channels: 3072 },
    );
    assert.equal(info.flops, 2 * closedFormMacs(1024, true));
    assert.equal(modelInfo('fastvithd', 768).tokens, 144);
    assert.equal(modelInfo('fastvithd', 256).tokens, 16);
    assert.throws(() => modelInfo('fastvithd', 0), /positive integer/);
  });

  it('`mixforge model info fastvithd --resolution 768 --json` prints them', () => {
    const r = spawnSync(
      process.execPath,
      ['bin/mixforge.js', 'model', 'info', 'fastvithd', '--resolution', '768', '--json'],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const printed = JSON.parse(r.stdout);
    assert.deepEqual(printed, { ...modelInfo('fastvithd', 768) });
    assert.equal(printed.tokens, 144);
    const bad = spawnSync(process.execPath, ['bin/mixforge.js', 'model', 'info', 'fastvit-x'], {
      encoding: 'utf8',
    });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /unknown model "fastvit-x" \(known: fastvithd, fastvithd-tiny\)/);
  });
});
