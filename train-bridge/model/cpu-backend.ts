// The CPU reference backend: plain loops over NCHW Float32Arrays with float64 accumulation. Slow and simple
// on purpose; it is the oracle the WebGPU model is checked against (fast enough for fastvithd-tiny at 64²).
import erf from '@stdlib/math-base-special-erf';
import type { FastViTHD } from './fastvithd.ts';
import { type ForwardBackend, forwardFastViTHD } from './forward.ts';
import { HostTensor, shapeString } from './host-tensor.ts';
import type { BatchNorm2d, Conv2d, LayerNormChannel, Linear } from './layers.ts';

export type BatchNormMode = 'eval' | 'train';

export class CpuBackend implements ForwardBackend<HostTensor> {
  /** Multiply-accumulates of convs, linears and attention matmuls done so far (cross-checks flops.ts). */
  macs = 0;

  /**
   * @param batchNormMode 'eval' normalises with running statistics; 'train' with the batch's statistics and
   *   updates the running ones (momentum, unbiased variance, num_batches_tracked), as PyTorch's train() does.
   */
  constructor(readonly batchNormMode: BatchNormMode = 'eval') {}

  spatialSize(x: HostTensor): [number, number] {
    const [, , h, w] = dims4(x, 'spatialSize');
    return [h, w];
  }

  conv2d(x: HostTensor, conv: Conv2d): HostTensor {
    const [n, c, h, w] = dims4(x, 'conv2d');
    if (c !== conv.inChannels) throw shapeError('conv2d', x, `expected ${conv.inChannels} input channels`);
    const { out, macs } = conv2dNCHW(x.data, [n, c, h, w], conv.weight.data, conv.bias?.data, {
      outChannels: conv.outChannels,
      kernelSize: conv.kernelSize,
      stride: conv.stride,
      padding: conv.padding,
      groups: conv.groups,
    });
    this.macs += macs;
    return out;
  }

  conv2dGelu(x: HostTensor, conv: Conv2d): HostTensor {
    return this.gelu(this.conv2d(x, conv));
  }

  batchNorm2d(x: HostTensor, bn: BatchNorm2d): HostTensor {
    const [n, c, h, w] = dims4(x, 'batchNorm2d');
    if (c !== bn.numFeatures) throw shapeError('batchNorm2d', x, `expected ${bn.numFeatures} channels`);
    const plane = h * w;
    const count = n * plane;
    const mean = new Float64Array(c);
    const variance = new Float64Array(c);
    const src = x.data;
    if (this.batchNormMode === 'train') {
      for (let ch = 0; ch < c; ch++) {
        let s = 0;
        for (let b = 0; b < n; b++) {
          const o = (b * c + ch) * plane;
          for (let i = 0; i < plane; i++) s += src[o + i];
        }
        const m = s / count;
        let v = 0;
        for (let b = 0; b < n; b++) {
          const o = (b * c + ch) * plane;
          for (let i = 0; i < plane; i++) v += (src[o + i] - m) ** 2;
        }
        mean[ch] = m;
        variance[ch] = v / count;
      }
      const rm = bn.runningMean.data;
      const rv = bn.runningVar.data;
      const unbias = count > 1 ? count / (count - 1) : 1;
      for (let ch = 0; ch < c; ch++) {
        rm[ch] = (1 - bn.momentum) * rm[ch] + bn.momentum * mean[ch];
        rv[ch] = (1 - bn.momentum) * rv[ch] + bn.momentum * variance[ch] * unbias;
      }
      bn.numBatchesTracked.value += 1n;
    } else {
      mean.set(bn.runningMean.data);
      variance.set(bn.runningVar.data);
    }
    const gamma = bn.weight.data;
    const beta = bn.bias.data;
    const out = new Float32Array(src.length);
    for (let ch = 0; ch < c; ch++) {
      const scale = gamma[ch] / Math.sqrt(variance[ch] + bn.eps);
      const shift = beta[ch] - mean[ch] * scale;
      for (let b = 0; b < n; b++) {
        const o = (b * c + ch) * plane;
        for (let i = 0; i < plane; i++) out[o + i] = src[o + i] * scale + shift;
      }
    }
    return new HostTensor(x.shape, out);
  }

  layerNormChannel(x: HostTensor, ln: LayerNormChannel): HostTensor {
    const [n, c, h, w] = dims4(x, 'layerNormChannel');
    const plane = h * w;
    const src = x.data;
    const out = new Float32Array(src.length);
    const gamma = ln.weight.data;
    const beta = ln.bias.data;
    for (let b = 0; b < n; b++) {
      for (let p = 0; p < plane; p++) {
        const base = b * c * plane + p;
        let s = 0;
        for (let ch = 0; ch < c; ch++) s += src[base + ch * plane];
        const u = s / c;
        let v = 0;
        for (let ch = 0; ch < c; ch++) v += (src[base + ch * plane] - u) ** 2;
        const inv = 1 / Math.sqrt(v / c + ln.eps);
        for (let ch = 0; ch < c; ch++)
          out[base + ch * plane] = gamma[ch] * (src[base + ch * plane] - u) * inv + beta[ch];
      }
    }
    return new HostTensor(x.shape, out);
  }

  gelu(x: HostTensor): HostTensor {
    return map(x, (v) => 0.5 * v * (1 + erf(v * Math.SQRT1_2)));
  }

  relu(x: HostTensor): HostTensor {
    return map(x, (v) => Math.max(v, 0));
  }

  sigmoid(x: HostTensor): HostTensor {
    return map(x, (v) => 1 / (1 + Math.exp(-v)));
  }

  add(a: HostTensor, b: HostTensor): HostTensor {
    return zip(a, b, 'add', (p, q) => p + q);
  }

  sub(a: HostTensor, b: HostTensor): HostTensor {
    return zip(a, b, 'sub', (p, q) => p - q);
  }

  scaleChannels(x: HostTensor, scale: HostTensor): HostTensor {
    const [n, c, h, w] = dims4(x, 'scaleChannels');
    if (scale.numel !== c) throw shapeError('scaleChannels', x, `layer scale has ${scale.numel} values`);
    const gate = new HostTensor([n, c, 1, 1], new Float32Array(n * c));
    for (let b = 0; b < n; b++) gate.data.set(scale.data, b * c);
    return this.mulChannels(new HostTensor([n, c, h, w], x.data), gate);
  }

  batchNorm2dAdd(x: HostTensor, bn: BatchNorm2d, addend: HostTensor): HostTensor {
    return this.add(addend, this.batchNorm2d(x, bn));
  }

  addScaled(x: HostTensor, y: HostTensor, scale: HostTensor): HostTensor {
    return this.add(x, this.scaleChannels(y, scale));
  }

  addScaledConv(x: HostTensor, h: HostTensor, conv: Conv2d, scale: HostTensor): HostTensor {
    return this.addScaled(x, this.conv2d(h, conv), scale);
  }

  addAll(xs: HostTensor[]): HostTensor {
    return xs.reduce((a, b) => this.add(a, b));
  }

  meanSpatial(x: HostTensor): HostTensor {
    const [n, c, h, w] = dims4(x, 'meanSpatial');
    const plane = h * w;
    const out = new Float32Array(n * c);
    for (let i = 0; i < n * c; i++) {
      let s = 0;
      for (let p = 0; p < plane; p++) s += x.data[i * plane + p];
      out[i] = s / plane;
    }
    return new HostTensor([n, c, 1, 1], out);
  }

  mulChannels(x: HostTensor, gate: HostTensor): HostTensor {
    const [n, c, h, w] = dims4(x, 'mulChannels');
    if (gate.numel !== n * c) throw shapeError('mulChannels', gate, `gate must be [${n}, ${c}, 1, 1]`);
    const plane = h * w;
    const out = new Float32Array(x.numel);
    for (let i = 0; i < n * c; i++) {
      const g = gate.data[i];
      for (let p = 0; p < plane; p++) out[i * plane + p] = x.data[i * plane + p] * g;
    }
    return new HostTensor(x.shape, out);
  }

  toTokens(x: HostTensor): HostTensor {
    const [n, c, h, w] = dims4(x, 'toTokens');
    const plane = h * w;
    const out = new Float32Array(x.numel);
    for (let b = 0; b < n; b++) {
      for (let ch = 0; ch < c; ch++) {
        for (let p = 0; p < plane; p++) out[(b * plane + p) * c + ch] = x.data[(b * c + ch) * plane + p];
      }
    }
    return new HostTensor([n, plane, c], out);
  }

  fromTokens(x: HostTensor, height: number, width: number): HostTensor {
    const [n, l, c] = x.shape;
    if (x.shape.length !== 3 || l !== height * width)
      throw shapeError('fromTokens', x, `expected ${height}·${width} tokens`);
    const out = new Float32Array(x.numel);
    for (let b = 0; b < n; b++) {
      for (let p = 0; p < l; p++) {
        for (let ch = 0; ch < c; ch++) out[(b * c + ch) * l + p] = x.data[(b * l + p) * c + ch];
      }
    }
    return new HostTensor([n, c, height, width], out);
  }

  linear(x: HostTensor, linear: Linear): HostTensor {
    const inF = linear.inFeatures;
    const outF = linear.outFeatures;
    if (x.shape[x.shape.length - 1] !== inF) throw shapeError('linear', x, `expected last dim ${inF}`);
    const rows = x.numel / inF;
    const wt = linear.weight.data;
    const bias = linear.bias?.data;
    const out = new Float32Array(rows * outF);
    for (let r = 0; r < rows; r++) {
      const xo = r * inF;
      for (let o = 0; o < outF; o++) {
        let s = bias ? bias[o] : 0;
        const wo = o * inF;
        for (let i = 0; i < inF; i++) s += x.data[xo + i] * wt[wo + i];
        out[r * outF + o] = s;
      }
    }
    this.macs += rows * inF * outF;
    return new HostTensor([...x.shape.slice(0, -1), outF], out);
  }

  multiHeadAttention(qkv: HostTensor, numHeads: number, headDim: number): HostTensor {
    const [n, l, three] = qkv.shape;
    const dim = numHeads * headDim;
    if (qkv.shape.length !== 3 || three !== 3 * dim) {
      throw shapeError('multiHeadAttention', qkv, `expected [N, L, ${3 * dim}]`);
    }
    const scale = headDim ** -0.5;
    const src = qkv.data;
    const out = new Float32Array(n * l * dim);
    const logits = new Float64Array(l);
    for (let b = 0; b < n; b++) {
      for (let hd = 0; hd < numHeads; hd++) {
        const qOff = hd * headDim;
        const kOff = dim + hd * headDim;
        const vOff = 2 * dim + hd * headDim;
        for (let i = 0; i < l; i++) {
          const qi = (b * l + i) * three + qOff;
          let max = Number.NEGATIVE_INFINITY;
          for (let j = 0; j < l; j++) {
            const kj = (b * l + j) * three + kOff;
            let s = 0;
            for (let d = 0; d < headDim; d++) s += src[qi + d] * scale * src[kj + d];
            logits[j] = s;
            if (s > max) max = s;
          }
          let z = 0;
          for (let j = 0; j < l; j++) {
            logits[j] = Math.exp(logits[j] - max);
            z += logits[j];
          }
          const oi = (b * l + i) * dim + hd * headDim;
          for (let d = 0; d < headDim; d++) {
            let s = 0;
            for (let j = 0; j < l; j++) s += logits[j] * src[(b * l + j) * three + vOff + d];
            out[oi + d] = s / z;
          }
        }
      }
    }
    this.macs += 2 * n * numHeads * l * l * headDim;
    return new HostTensor([n, l, dim], out);
  }
}

export interface ConvGeometry {
  outChannels: number;
  kernelSize: number;
  stride: number;
  padding: number;
  groups: number;
}

/** Direct convolution of an NCHW input with an OIHW weight; returns the output and its multiply-accumulates. */
export function conv2dNCHW(
  x: Float32Array,
  [n, c, h, w]: readonly number[],
  weight: Float32Array,
  bias: Float32Array | undefined,
  g: ConvGeometry,
): { out: HostTensor; macs: number } {
  const { outChannels: oc, kernelSize: k, stride: s, padding: p, groups } = g;
  const inPerGroup = c / groups;
  const outPerGroup = oc / groups;
  if (!Number.isInteger(inPerGroup) || !Number.isInteger(outPerGroup)) {
    throw new RangeError(`conv2d: groups ${groups} must divide ${c} input and ${oc} output channels`);
  }
  if (weight.length !== oc * inPerGroup * k * k) {
    throw new RangeError(
      `conv2d: weight has ${weight.length} values, expected ${oc}·${inPerGroup}·${k}·${k}`,
    );
  }
  const ho = Math.floor((h + 2 * p - k) / s) + 1;
  const wo = Math.floor((w + 2 * p - k) / s) + 1;
  if (ho <= 0 || wo <= 0) throw new RangeError(`conv2d: input ${h}×${w} is too small for kernel ${k}`);
  const out = new Float32Array(n * oc * ho * wo);
  const acc = new Float64Array(ho * wo);
  // Valid output ranges per kernel offset, so the inner loops carry no bounds checks.
  const range = (size: number, outSize: number, kk: number): [number, number] => [
    Math.max(0, Math.ceil((p - kk) / s)),
    Math.min(outSize - 1, Math.floor((size - 1 + p - kk) / s)),
  ];
  const rowRange = Array.from({ length: k }, (_, kk) => range(h, ho, kk));
  const colRange = Array.from({ length: k }, (_, kk) => range(w, wo, kk));
  for (let b = 0; b < n; b++) {
    for (let o = 0; o < oc; o++) {
      acc.fill(bias ? bias[o] : 0);
      const group = Math.floor(o / outPerGroup);
      for (let ci = 0; ci < inPerGroup; ci++) {
        const plane = (b * c + group * inPerGroup + ci) * h * w;
        const wBase = (o * inPerGroup + ci) * k * k;
        for (let ky = 0; ky < k; ky++) {
          const [oy0, oy1] = rowRange[ky];
          for (let kx = 0; kx < k; kx++) {
            const wv = weight[wBase + ky * k + kx];
            const [ox0, ox1] = colRange[kx];
            for (let oy = oy0; oy <= oy1; oy++) {
              const row = plane + (oy * s - p + ky) * w - p + kx;
              const accRow = oy * wo;
              for (let ox = ox0; ox <= ox1; ox++) acc[accRow + ox] += wv * x[row + ox * s];
            }
          }
        }
      }
      out.set(acc, (b * oc + o) * ho * wo);
    }
  }
  return { out: new HostTensor([n, oc, ho, wo], out), macs: n * oc * ho * wo * inPerGroup * k * k };
}

/** The image embedding of `images` (N, 3, H, W) on the CPU. */
export function forwardCpu(model: FastViTHD, images: HostTensor, mode: BatchNormMode = 'eval'): HostTensor {
  return forwardFastViTHD(model, images, new CpuBackend(mode));
}

function dims4(x: HostTensor, op: string): [number, number, number, number] {
  if (x.shape.length !== 4) throw shapeError(op, x, 'expected an NCHW tensor');
  return [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
}

function shapeError(op: string, x: HostTensor, expected: string): RangeError {
  return new RangeError(`${op}: got shape ${shapeString(x.shape)}, ${expected}`);
}

function map(x: HostTensor, f: (v: number) => number): HostTensor {
  const out = new Float32Array(x.numel);
  const src = x.data;
  for (let i = 0; i < out.length; i++) out[i] = f(src[i]);
  return new HostTensor(x.shape, out);
}

function zip(a: HostTensor, b: HostTensor, op: string, f: (p: number, q: number) => number): HostTensor {
  if (a.numel !== b.numel || a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw shapeError(op, b, `expected ${shapeString(a.shape)}`);
  }
  const out = new Float32Array(a.numel);
  for (let i = 0; i < out.length; i++) out[i] = f(a.data[i], b.data[i]);
  return new HostTensor(a.shape, out);
}
