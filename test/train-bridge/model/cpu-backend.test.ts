// The CPU reference ops (the oracle for the GPU model) against hand-computed values and naive re-derivations.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CpuBackend, forwardCpu } from '../../../train-bridge/model/cpu-backend.ts';
import { HostTensor } from '../../../train-bridge/model/host-tensor.ts';
import { BatchNorm2d, Conv2d, LayerNormChannel, Linear } from '../../../train-bridge/model/layers.ts';
import { maxAbsDiff, randomInput, tinyModel } from './fixtures.ts';

function tensor(shape: number[], values: number[]): HostTensor {
  return new HostTensor(shape, Float32Array.from(values));
}

function assertClose(actual: ArrayLike<number>, want: number[], tolerance: number): void {
  assert.equal(actual.length, want.length);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(actual[i] - want[i]) < tolerance, `at ${i}: ${actual[i]} vs ${want[i]}`);
  }
}

/** Textbook convolution with explicit bounds checks: the independent derivation. */
function naiveConv(x: HostTensor, conv: Conv2d): Float32Array {
  const [n, c, h, w] = x.shape;
  const { outChannels: o, kernelSize: k, stride: s, padding: p, groups: g } = conv;
  const ho = Math.floor((h + 2 * p - k) / s) + 1;
  const wo = Math.floor((w + 2 * p - k) / s) + 1;
  const cin = c / g;
  const out = new Float32Array(n * o * ho * wo);
  for (let b = 0; b < n; b++)
    for (let oc = 0; oc < o; oc++)
      for (let y = 0; y < ho; y++)
        for (let xo = 0; xo < wo; xo++) {
          let acc = conv.bias ? conv.bias.data[oc] : 0;
          const grp = Math.floor(oc / (o / g));
          for (let ic = 0; ic < cin; ic++)
            for (let ky = 0; ky < k; ky++)
              for (let kx = 0; kx < k; kx++) {
                const iy = y * s - p + ky;
                const ix = xo * s - p + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                acc +=
                  conv.weight.data[((oc * cin + ic) * k + ky) * k + kx] *
                  x.data[((b * c + grp * cin + ic) * h + iy) * w + ix];
              }
          out[((b * o + oc) * ho + y) * wo + xo] = acc;
        }
  return out;
}

describe('CPU reference ops', () => {
  it('conv2d matches hand-computed values (stride, padding)', () => {
    const x = tensor([1, 1, 3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const diff = new Conv2d(1, 1, 2);
    diff.weight.data = Float32Array.from([1, 0, 0, -1]);
    const ops = new CpuBackend();
    assert.deepEqual([...ops.conv2d(x, diff).data], [-4, -4, -4, -4]);
    const box = new Conv2d(1, 1, 3, { stride: 2, padding: 1, bias: true });
    box.weight.fill(1);
    box.bias!.fill(0.5);
    const y = ops.conv2d(x, box);
    assert.deepEqual(y.shape, [1, 1, 2, 2]);
    assert.deepEqual([...y.data], [12.5, 16.5, 24.5, 28.5]);
    assert.equal(ops.macs, 4 * 4 + 4 * 9);
  });

  it('conv2d equals a textbook convolution for random geometries and groups', () => {
    fc.assert(
      fc.property(
        fc.record({
          groups: fc.constantFrom(1, 2, 3),
          inPer: fc.integer({ min: 1, max: 2 }),
          outPer: fc.integer({ min: 1, max: 3 }),
          k: fc.constantFrom(1, 3, 5, 7),
          stride: fc.constantFrom(1, 2),
          h: fc.integer({ min: 7, max: 11 }),
          w: fc.integer({ min: 7, max: 11 }),
          seed: fc.integer({ min: 0, max: 1000 }),
        }),
        ({ groups, inPer, outPer, k, stride, h, w, seed }) => {
          const conv = new Conv2d(groups * inPer, groups * outPer, k, {
            stride,
            padding: k >> 1,
            groups,
            bias: seed % 2 === 0,
          });
          conv.weight.data = randomInput([...conv.weight.shape], seed).data;
          if (conv.bias) conv.bias.data = randomInput([conv.outChannels], seed + 1).data;
          const x = randomInput([2, groups * inPer, h, w], seed + 2);
          const got = new CpuBackend().conv2d(x, conv).data;
          assert.ok(maxAbsDiff(got, naiveConv(x, conv)) < 1e-5);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('gelu is the exact erf form', () => {
    const y = new CpuBackend().gelu(tensor([4], [1, -1, 0.5, 0]));
    const want = [0.8413447460685429, -0.15865525393145707, 0.34573123063700656, 0];
    assertClose(y.data, want, 1e-7);
  });

  it('batchNorm2d in eval mode uses running statistics', () => {
    const bn = new BatchNorm2d(2);
    bn.weight.data = Float32Array.from([2, 1]);
    bn.bias.data = Float32Array.from([1, 0]);
    bn.runningMean.data = Float32Array.from([1, -1]);
    bn.runningVar.data = Float32Array.from([4 - 1e-5, 1 - 1e-5]);
    const y = new CpuBackend('eval').batchNorm2d(tensor([1, 2, 1, 2], [3, 5, -1, 1]), bn);
    assertClose(y.data, [2 * (2 / 2) + 1, 2 * (4 / 2) + 1, 0, 2], 1e-6);
    assert.equal(bn.numBatchesTracked.value, 0n);
  });

  it('batchNorm2d in train mode normalises by batch statistics and updates running stats like PyTorch', () => {
    const bn = new BatchNorm2d(1);
    bn.weight.fill(3);
    bn.bias.fill(-1);
    // Values over N=2, H=1, W=2: mean 2.5, biased variance 1.25, unbiased 5/3.
    const x = tensor([2, 1, 1, 2], [1, 2, 3, 4]);
    const y = new CpuBackend('train').batchNorm2d(x, bn);
    const inv = 1 / Math.sqrt(1.25 + 1e-5);
    assertClose(
      y.data,
      [1, 2, 3, 4].map((v) => 3 * (v - 2.5) * inv - 1),
      1e-5,
    );
    assert.ok(Math.abs(bn.runningMean.data[0] - 0.25) < 1e-7);
    assert.ok(Math.abs(bn.runningVar.data[0] - (0.9 + 0.1 * (5 / 3))) < 1e-6);
    assert.equal(bn.numBatchesTracked.value, 1n);
  });

  it('layerNormChannel normalises across channels at each pixel', () => {
    const ln = new LayerNormChannel(3);
    ln.weight.data = Float32Array.from([1, 2, 3]);
    ln.bias.data = Float32Array.from([0, 0, 1]);
    // Pixel 0 has channels (1, 2, 3); pixel 1 has (0, 0, 6).
    const y = new CpuBackend().layerNormChannel(tensor([1, 3, 1, 2], [1, 0, 2, 0, 3, 6]), ln);
    const s0 = 1 / Math.sqrt(2 / 3 + 1e-5);
    const s1 = 1 / Math.sqrt(8 + 1e-5);
    const want = [-1 * s0, -2 * s1, 0, -2 * 2 * s1, 3 * s0 + 1, 3 * 4 * s1 + 1];
    assertClose(y.data, want, 1e-5);
  });

  it('multiHeadAttention matches per-head softmax(q·kᵀ/√d)·v with the (3, heads, d) channel layout', () => {
    const heads = 2;
    const d = 3;
    const l = 4;
    const qkv = randomInput([1, l, 3 * heads * d], 9, 2);
    const y = new CpuBackend().multiHeadAttention(qkv, heads, d);
    const at = (t: number, part: number, h: number, i: number) =>
      qkv.data[t * 3 * heads * d + part * heads * d + h * d + i];
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < l; i++) {
        const logits = Array.from({ length: l }, (_, j) => {
          let s = 0;
          for (let e = 0; e < d; e++) s += at(i, 0, h, e) * at(j, 1, h, e);
          return s / Math.sqrt(d);
        });
        const z = logits.reduce((a, v) => a + Math.exp(v), 0);
        for (let e = 0; e < d; e++) {
          const want = logits.reduce((a, v, j) => a + (Math.exp(v) / z) * at(j, 2, h, e), 0);
          assert.ok(Math.abs(y.data[i * heads * d + h * d + e] - want) < 1e-5);
        }
      }
    }
  });

  it('linear, token reshapes and the SE pieces', () => {
    const ops = new CpuBackend();
    const lin = new Linear(2, 3);
    lin.weight.data = Float32Array.from([1, 0, 0, 1, 1, 1]);
    lin.bias!.data = Float32Array.from([0, 0, 10]);
    assert.deepEqual([...ops.linear(tensor([1, 1, 2], [2, 3]), lin).data], [2, 3, 15]);
    const x = randomInput([2, 3, 2, 5], 4);
    const tokens = ops.toTokens(x);
    assert.deepEqual(tokens.shape, [2, 10, 3]);
    // Token p of image b holds the C values at pixel p (row-major over H, W).
    assert.equal(tokens.data[(1 * 10 + 7) * 3 + 2], x.data[(1 * 3 + 2) * 10 + 7]);
    assert.deepEqual([...ops.fromTokens(tokens, 2, 5).data], [...x.data]);
    const m = ops.meanSpatial(tensor([1, 2, 1, 2], [1, 3, -2, 4]));
    assert.deepEqual([...m.data], [2, 1]);
    assert.deepEqual([...ops.mulChannels(tensor([1, 2, 1, 2], [1, 3, -2, 4]), m).data], [2, 6, -2, 4]);
  });

  it('train-mode forward of fastvithd-tiny updates every BatchNorm once and is deterministic', () => {
    const a = tinyModel(4);
    const b = tinyModel(4);
    const x = randomInput([2, 3, 64, 64], 8);
    const ya = forwardCpu(a, x, 'train');
    const yb = forwardCpu(b, x, 'train');
    assert.deepEqual(ya.shape, [2, 256, 1, 1]);
    assert.equal(maxAbsDiff(ya.data, yb.data), 0);
    let bns = 0;
    for (const [, m] of a.namedModules()) {
      if (m instanceof BatchNorm2d) {
        bns++;
        assert.equal(m.numBatchesTracked.value, 1n);
      }
    }
    assert.ok(bns > 30);
    // Train mode normalises with batch statistics, so it differs from eval mode on the same weights.
    assert.ok(maxAbsDiff(ya.data, forwardCpu(tinyModel(4), x, 'eval').data) > 1e-3);
  });
});
