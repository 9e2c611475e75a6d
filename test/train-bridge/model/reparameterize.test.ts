// Folding: every reparameterisable block, and the whole tiny model, gives the same output as its train form in
// eval mode, with BN statistics and layer scales far from init so that each branch matters.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CpuBackend, forwardCpu } from '../../../train-bridge/model/cpu-backend.ts';
import { RepCPE, RepMixer } from '../../../train-bridge/model/fastvit-blocks.ts';
import { forwardModule } from '../../../train-bridge/model/forward.ts';
import { initFastViTHD } from '../../../train-bridge/model/init.ts';
import { MobileOneBlock, ReparamLargeKernelConv } from '../../../train-bridge/model/mobileone.ts';
import type { Module } from '../../../train-bridge/model/module.ts';
import { reparameterize } from '../../../train-bridge/model/reparameterize.ts';
import { maxAbs, maxAbsDiff, perturbStatistics, randomInput, tinyModel } from './fixtures.ts';

/** Relative max difference between the train form (eval BN) and the folded form of `m` on input `shape`. */
function foldingError(m: Module, shape: number[], seed: number): { rel: number; scale: number } {
  initFastViTHD(m, seed);
  perturbStatistics(m, seed);
  const x = randomInput(shape, seed);
  const before = forwardModule(m, x, new CpuBackend('eval')).data;
  assert.ok(reparameterize(m) > 0, 'something was folded');
  const after = forwardModule(m, x, new CpuBackend('eval')).data;
  const scale = maxAbs(before);
  return { rel: maxAbsDiff(before, after) / scale, scale };
}

describe('reparameterize', () => {
  const cases: Array<[string, () => Module, number[]]> = [
    [
      'MobileOneBlock 3×3 dense, stride 2 (stem)',
      () => new MobileOneBlock({ inChannels: 3, outChannels: 6, kernelSize: 3, stride: 2, padding: 1 }),
      [2, 3, 9, 9],
    ],
    [
      'MobileOneBlock 3×3 depthwise with skip + scale, no activation (RepMixer mixer)',
      () =>
        new MobileOneBlock({
          inChannels: 5,
          outChannels: 5,
          kernelSize: 3,
          padding: 1,
          groups: 5,
          activation: 'identity',
        }),
      [1, 5, 6, 7],
    ],
    [
      'MobileOneBlock 3×3 grouped (2 channels per group) with skip and scale',
      () => new MobileOneBlock({ inChannels: 8, outChannels: 8, kernelSize: 3, padding: 1, groups: 4 }),
      [2, 8, 5, 5],
    ],
    [
      'MobileOneBlock 1×1 with skip BN (patch embed / stem 3)',
      () => new MobileOneBlock({ inChannels: 6, outChannels: 6, kernelSize: 1 }),
      [1, 6, 4, 4],
    ],
    [
      'MobileOneBlock 3×3 with groups = C, out = 2C, SE and scale branch (conv_exp)',
      () =>
        new MobileOneBlock({
          inChannels: 16,
          outChannels: 32,
          kernelSize: 3,
          padding: 1,
          groups: 16,
          useSE: true,
        }),
      [2, 16, 3, 3],
    ],
    [
      'MobileOneBlock with two conv branches',
      () =>
        new MobileOneBlock({ inChannels: 4, outChannels: 4, kernelSize: 3, padding: 1, numConvBranches: 2 }),
      [1, 4, 5, 5],
    ],
    [
      'ReparamLargeKernelConv 7×7 + 3×3, stride 2, groups = C, out = 2C',
      () =>
        new ReparamLargeKernelConv({
          inChannels: 4,
          outChannels: 8,
          kernelSize: 7,
          stride: 2,
          groups: 4,
          smallKernel: 3,
        }),
      [2, 4, 11, 10],
    ],
    ['RepMixer 3×3', () => new RepMixer(6, 3, 1e-5, false), [2, 6, 7, 5]],
    ['RepCPE 7×7', () => new RepCPE(6, 7, false), [1, 6, 5, 6]],
  ];
  for (const [name, make, shape] of cases) {
    it(`folds ${name} exactly`, () => {
      const { rel } = foldingError(make(), shape, 3);
      assert.ok(rel <= 1e-5, `relative error ${rel}`);
    });
  }

  it('folds the whole fastvithd-tiny: eval-mode outputs agree within 1e-4 of the output scale', () => {
    const model = tinyModel(11);
    const x = randomInput([2, 3, 64, 64], 5);
    const trainForm = forwardCpu(model, x, 'eval');
    // The statistics really matter: the same weights with init BN stats and 1e-5 layer scales differ a lot.
    const plain = forwardCpu(tinyModel(11, false), x, 'eval');
    const scale = maxAbs(trainForm.data);
    assert.ok(maxAbsDiff(trainForm.data, plain.data) > 0.1 * scale, 'perturbed statistics change the output');

    reparameterize(model);
    assert.equal(model.network.items.length, 11);
    const folded = forwardCpu(model, x, 'eval');
    assert.deepEqual(folded.shape, [2, 256, 1, 1]);
    const rel = maxAbsDiff(trainForm.data, folded.data) / scale;
    assert.ok(rel <= 1e-4, `relative error ${rel}`);
    // Folding a second time is a no-op.
    assert.equal(reparameterize(model), 0);
  });

  it('every branch of a MobileOneBlock contributes, so the block folding tests are not vacuous', () => {
    const make = () => {
      const block = new MobileOneBlock({
        inChannels: 4,
        outChannels: 4,
        kernelSize: 3,
        padding: 1,
        groups: 4,
      });
      initFastViTHD(block, 2);
      perturbStatistics(block, 2);
      return block;
    };
    const x = randomInput([1, 4, 5, 5], 2);
    const full = forwardModule(make(), x, new CpuBackend('eval')).data;
    for (const branch of ['rbrSkip', 'rbrScale', 'rbrConv'] as const) {
      const block = make();
      const bn =
        branch === 'rbrSkip'
          ? block.rbrSkip!
          : branch === 'rbrScale'
            ? block.rbrScale!.bn
            : block.rbrConv[0].bn;
      bn.weight.fill(0);
      bn.bias.fill(0);
      const without = forwardModule(block, x, new CpuBackend('eval')).data;
      assert.ok(maxAbsDiff(full, without) > 0.05 * maxAbs(full), `${branch} matters`);
    }
  });
});
