// FastViTHD structure: exact reference parameter counts in both forms, state_dict names and shapes, output sizes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FastViTHD, modelConfig } from '../../../train-bridge/model/fastvithd.ts';
import { profileForward } from '../../../train-bridge/model/flops.ts';
import { countParameters } from '../../../train-bridge/model/module.ts';
import { reparameterize } from '../../../train-bridge/model/reparameterize.ts';

function shapes(m: FastViTHD): Map<string, string> {
  return new Map([...m.stateEntries()].map(([n, t]) => [n, t.shape.join('x')]));
}

describe('FastViTHD (full config)', () => {
  it('has 122,875,584 parameters in train form and 122,714,208 after reparameterize()', () => {
    const model = new FastViTHD(modelConfig('fastvithd'));
    assert.equal(countParameters(model), 122_875_584);
    const folded = reparameterize(model);
    // 3 stem + 4·2 patch-embed + 1 conv_exp MobileOneBlocks/large kernels, 38 RepMixers, 2 RepCPEs.
    assert.equal(folded, 3 + 4 * 2 + 1 + (2 + 12 + 24) + 2);
    assert.equal(countParameters(model), 122_714_208);
    // Adding MobileCLIP's 3072→768 projection gives the paper's "125M".
    assert.equal(countParameters(model) + 3072 * 768, 125_073_504);
  });

  it('names tensors as the reference state_dict, in NCHW/OIHW layouts', () => {
    const s = shapes(new FastViTHD(modelConfig('fastvithd')));
    const expected: Record<string, string> = {
      'patch_embed.0.rbr_conv.0.conv.weight': '96x3x3x3',
      'patch_embed.0.rbr_conv.0.bn.running_var': '96',
      'patch_embed.0.rbr_conv.0.bn.num_batches_tracked': '',
      'patch_embed.1.rbr_conv.0.conv.weight': '96x1x3x3',
      'patch_embed.2.rbr_skip.weight': '96',
      'patch_embed.2.rbr_conv.0.conv.weight': '96x96x1x1',
      'network.0.0.layer_scale': '96x1x1',
      'network.0.0.token_mixer.layer_scale': '96x1x1',
      'network.0.0.token_mixer.norm.rbr_skip.running_mean': '96',
      'network.0.0.token_mixer.mixer.rbr_skip.weight': '96',
      'network.0.0.token_mixer.mixer.rbr_conv.0.conv.weight': '96x1x3x3',
      'network.0.0.token_mixer.mixer.rbr_scale.conv.weight': '96x1x1x1',
      'network.0.1.convffn.conv.conv.weight': '96x1x7x7',
      'network.0.1.convffn.conv.bn.bias': '96',
      'network.0.1.convffn.fc1.weight': '384x96x1x1',
      'network.0.1.convffn.fc2.bias': '96',
      'network.1.proj.0.lkb_origin.conv.weight': '192x1x7x7',
      'network.1.proj.0.small_conv.conv.weight': '192x1x3x3',
      'network.1.proj.1.rbr_skip.weight': '192',
      'network.1.proj.1.rbr_conv.0.conv.weight': '192x192x1x1',
      'network.2.11.layer_scale': '192x1x1',
      'network.4.23.token_mixer.mixer.rbr_conv.0.conv.weight': '384x1x3x3',
      'network.5.proj.0.lkb_origin.conv.weight': '768x1x7x7',
      'network.6.pe.weight': '768x1x7x7',
      'network.6.pe.bias': '768',
      'network.7.3.norm.weight': '768',
      'network.7.0.layer_scale_1': '768x1x1',
      'network.7.0.layer_scale_2': '768x1x1',
      'network.7.0.token_mixer.qkv.weight': '2304x768',
      'network.7.0.token_mixer.proj.weight': '768x768',
      'network.7.0.token_mixer.proj.bias': '768',
      'network.8.proj.1.rbr_conv.0.conv.weight': '1536x1536x1x1',
      'network.9.pe.weight': '1536x1x7x7',
      'network.10.1.convffn.fc1.weight': '6144x1536x1x1',
      'conv_exp.se.reduce.weight': '192x3072x1x1',
      'conv_exp.se.expand.bias': '3072',
      'conv_exp.rbr_conv.0.conv.weight': '3072x1x3x3',
      'conv_exp.rbr_scale.conv.weight': '3072x1x1x1',
    };
    for (const [name, shape] of Object.entries(expected)) assert.equal(s.get(name), shape, name);
    // Absent by construction in the reference: stem scale branches, skips where in≠out or stride 2, qkv bias.
    for (const absent of [
      'patch_embed.0.rbr_scale.conv.weight',
      'patch_embed.1.rbr_scale.conv.weight',
      'patch_embed.0.rbr_skip.weight',
      'patch_embed.1.rbr_skip.weight',
      'network.1.proj.0.rbr_skip.weight',
      'network.7.0.token_mixer.qkv.bias',
      'network.0.0.token_mixer.norm.rbr_conv.0.conv.weight',
      'network.0.0.token_mixer.norm.rbr_scale.conv.weight',
      'conv_exp.rbr_skip.weight',
      'network.11.0.layer_scale',
      'head.weight',
    ]) {
      assert.equal(s.has(absent), false, absent);
    }
    const names = [...new FastViTHD(modelConfig('fastvithd')).stateEntries()].map(([n]) => n);
    assert.equal(new Set(names).size, names.length, 'state_dict names are unique');
  });

  it('reparameterize() yields exactly the names and shapes of a model built in inference form', () => {
    for (const name of ['fastvithd', 'fastvithd-tiny']) {
      const folded = new FastViTHD(modelConfig(name));
      reparameterize(folded);
      const direct = new FastViTHD(modelConfig(name), { inferenceMode: true });
      assert.deepEqual([...shapes(folded)], [...shapes(direct)], name);
      assert.equal(
        shapes(direct).get('network.0.0.token_mixer.reparam_conv.weight'),
        name === 'fastvithd' ? '96x1x3x3' : '8x1x3x3',
      );
      assert.equal(shapes(direct).has('network.0.0.token_mixer.layer_scale'), false);
      assert.equal(shapes(direct).has('network.0.0.layer_scale'), true);
    }
  });

  it('downsamples by 64 to 3072 channels: 1024² → 16×16, 768² → 12×12, 256² → 4×4', () => {
    const model = new FastViTHD(modelConfig('fastvithd'));
    assert.deepEqual(profileForward(model, 1024).shape, [1, 3072, 16, 16]);
    assert.deepEqual(profileForward(model, 768).shape, [1, 3072, 12, 12]);
    assert.deepEqual(profileForward(model, 256).shape, [1, 3072, 4, 4]);
    const tiny = new FastViTHD(modelConfig('fastvithd-tiny'));
    assert.deepEqual(profileForward(tiny, 64).shape, [1, 256, 1, 1]);
  });

  it('rejects configs whose attention widths do not split into heads', () => {
    const bad = { ...modelConfig('fastvithd-tiny'), widths: [8, 16, 32, 60, 128] };
    assert.throws(() => new FastViTHD(bad), /widths\[3\].*60 is not a multiple of headDim 8/);
    assert.throws(() => modelConfig('fastvit-nope'), /unknown model "fastvit-nope"/);
  });
});
