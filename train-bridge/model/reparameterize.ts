// Folds FastViTHD's train-time branches into single convs for inference (RepVGG / MobileOne / RepLKNet /
// FastViT): BN into conv, 1×1 padded to k×k, skip BN to an identity kernel, RepMixer and RepCPE into one conv.
// Uses the BN running statistics, so the folded model equals the train-form model in eval mode.
import { RepCPE, RepMixer } from './fastvit-blocks.ts';
import { type BatchNorm2d, Conv2d, type ConvBN } from './layers.ts';
import { MobileOneBlock, ReparamLargeKernelConv } from './mobileone.ts';
import type { Module } from './module.ts';

/** A conv kernel (O, I/groups, k, k) and bias (O) in float64 while they are being summed. */
interface KernelBias {
  kernel: Float64Array;
  bias: Float64Array;
  outChannels: number;
  inPerGroup: number;
  kernelSize: number;
}

/** Fold every reparameterisable module under `root` in place; returns how many modules were folded. */
export function reparameterize(root: Module): number {
  let folded = 0;
  const visit = (m: Module): void => {
    if (m instanceof RepMixer) {
      if (!m.inferenceMode) {
        foldRepMixer(m);
        folded++;
      }
      return;
    }
    if (m instanceof MobileOneBlock) {
      if (!m.inferenceMode) {
        m.adoptReparamConv(toConv(m.makeConv(m.kernelSize, m.padding, true), mobileOneKernelBias(m)));
        folded++;
      }
      return; // its SE child has nothing to fold
    }
    if (m instanceof ReparamLargeKernelConv) {
      if (!m.inferenceMode) {
        m.adoptReparamConv(toConv(m.makeConv(m.kernelSize, true), largeKernelKernelBias(m)));
        folded++;
      }
      return;
    }
    if (m instanceof RepCPE) {
      if (!m.inferenceMode) {
        foldRepCPE(m);
        folded++;
      }
      return;
    }
    for (const [, child] of [...m.children()]) visit(child);
  };
  visit(root);
  return folded;
}

/** BN(conv(x)) = conv'(x) + b' with conv' = conv·γ/σ per output channel, b' = β − μ·γ/σ. */
function fuseConvBN(branch: ConvBN): KernelBias {
  const { conv, bn } = branch;
  const kernel = Float64Array.from(conv.weight.data);
  const perOut = kernel.length / conv.outChannels;
  const bias = new Float64Array(conv.outChannels);
  applyBN(kernel, bias, perOut, bn);
  return {
    kernel,
    bias,
    outChannels: conv.outChannels,
    inPerGroup: conv.inChannels / conv.groups,
    kernelSize: conv.kernelSize,
  };
}

function applyBN(kernel: Float64Array, bias: Float64Array, perOut: number, bn: BatchNorm2d): void {
  const gamma = bn.weight.data;
  const beta = bn.bias.data;
  const mean = bn.runningMean.data;
  const variance = bn.runningVar.data;
  for (let o = 0; o < bias.length; o++) {
    const t = gamma[o] / Math.sqrt(variance[o] + bn.eps);
    for (let i = 0; i < perOut; i++) kernel[o * perOut + i] *= t;
    bias[o] = beta[o] - mean[o] * t;
  }
}

/**
 * The identity as a k×k grouped conv kernel (C, C/groups, k, k): output channel i reads input channel i,
 * which is index i mod (C/groups) inside its group, at the kernel centre.
 */
function identityKernel(channels: number, groups: number, kernelSize: number): Float64Array {
  const inPerGroup = channels / groups;
  const kernel = new Float64Array(channels * inPerGroup * kernelSize * kernelSize);
  const centre = kernelSize >> 1;
  for (let i = 0; i < channels; i++) {
    kernel[((i * inPerGroup + (i % inPerGroup)) * kernelSize + centre) * kernelSize + centre] = 1;
  }
  return kernel;
}

/** A skip BatchNorm as a conv: identity kernel scaled by γ/σ, bias β − μ·γ/σ. */
function fuseSkipBN(bn: BatchNorm2d, groups: number, kernelSize: number): KernelBias {
  const kernel = identityKernel(bn.numFeatures, groups, kernelSize);
  const bias = new Float64Array(bn.numFeatures);
  applyBN(kernel, bias, kernel.length / bn.numFeatures, bn);
  return { kernel, bias, outChannels: bn.numFeatures, inPerGroup: bn.numFeatures / groups, kernelSize };
}

/** Zero-pad a kernel to a larger odd size, centred (the 1×1 scale branch → k×k, 3×3 → 7×7). */
function padKernel(kb: KernelBias, kernelSize: number): KernelBias {
  if (kb.kernelSize === kernelSize) return kb;
  const pad = (kernelSize - kb.kernelSize) / 2;
  if (!Number.isInteger(pad) || pad < 0)
    throw new RangeError(`cannot pad a ${kb.kernelSize}² kernel to ${kernelSize}²`);
  const slices = kb.outChannels * kb.inPerGroup;
  const kernel = new Float64Array(slices * kernelSize * kernelSize);
  for (let s = 0; s < slices; s++) {
    for (let y = 0; y < kb.kernelSize; y++) {
      for (let x = 0; x < kb.kernelSize; x++) {
        kernel[(s * kernelSize + y + pad) * kernelSize + x + pad] =
          kb.kernel[(s * kb.kernelSize + y) * kb.kernelSize + x];
      }
    }
  }
  return { ...kb, kernel, kernelSize };
}

function sumInto(target: KernelBias, add: KernelBias): void {
  if (target.kernel.length !== add.kernel.length)
    throw new RangeError('folding branches of different kernel shapes');
  for (let i = 0; i < target.kernel.length; i++) target.kernel[i] += add.kernel[i];
  for (let i = 0; i < target.bias.length; i++) target.bias[i] += add.bias[i];
}

/** Σ over the conv branches + padded scale branch + skip identity (MobileOneBlock._get_kernel_bias). */
export function mobileOneKernelBias(m: MobileOneBlock): KernelBias {
  const k = m.kernelSize;
  const total: KernelBias = {
    kernel: new Float64Array(m.outChannels * (m.inChannels / m.groups) * k * k),
    bias: new Float64Array(m.outChannels),
    outChannels: m.outChannels,
    inPerGroup: m.inChannels / m.groups,
    kernelSize: k,
  };
  if (m.rbrScale) sumInto(total, padKernel(fuseConvBN(m.rbrScale), k));
  if (m.rbrSkip) sumInto(total, fuseSkipBN(m.rbrSkip, m.groups, k));
  for (const branch of m.rbrConv) sumInto(total, fuseConvBN(branch));
  return total;
}

function largeKernelKernelBias(m: ReparamLargeKernelConv): KernelBias {
  const total = fuseConvBN(m.lkbOrigin!);
  sumInto(total, padKernel(fuseConvBN(m.smallConv!), m.kernelSize));
  return total;
}

/**
 * x + γ·(mixer(x) − norm(x)) with mixer, norm depthwise convs (W_m, b_m), (W_n, b_n):
 * W = I + γ·(W_m − W_n), b = γ·(b_m − b_n), γ per channel (RepMixer.reparameterize).
 */
function foldRepMixer(m: RepMixer): void {
  const mixer = mobileOneKernelBias(m.mixer!);
  const norm = mobileOneKernelBias(m.norm!);
  const gamma = m.layerScale!.data;
  const kernel = identityKernel(m.dim, m.dim, m.kernelSize);
  const bias = new Float64Array(m.dim);
  const perChannel = m.kernelSize * m.kernelSize;
  for (let c = 0; c < m.dim; c++) {
    for (let i = 0; i < perChannel; i++) {
      const j = c * perChannel + i;
      kernel[j] += gamma[c] * (mixer.kernel[j] - norm.kernel[j]);
    }
    bias[c] = gamma[c] * (mixer.bias[c] - norm.bias[c]);
  }
  m.adoptReparamConv(
    toConv(m.makeConv(), { kernel, bias, outChannels: m.dim, inPerGroup: 1, kernelSize: m.kernelSize }),
  );
}

/** pe(x) + x = conv with kernel pe.W + I and bias pe.b. */
function foldRepCPE(m: RepCPE): void {
  const pe = m.pe!;
  const kernel = identityKernel(m.dim, m.dim, m.kernelSize);
  const w = pe.weight.data;
  for (let i = 0; i < kernel.length; i++) kernel[i] += w[i];
  const bias = Float64Array.from(pe.bias!.data);
  m.adoptReparamConv(
    toConv(m.makeConv(), { kernel, bias, outChannels: m.dim, inPerGroup: 1, kernelSize: m.kernelSize }),
  );
}

function toConv(conv: Conv2d, kb: KernelBias): Conv2d {
  if (!(conv instanceof Conv2d) || conv.weight.numel !== kb.kernel.length || !conv.bias) {
    throw new RangeError(
      `folded kernel of ${kb.kernel.length} values does not fit ${conv.weight.shape.join('×')}`,
    );
  }
  conv.weight.data = Float32Array.from(kb.kernel);
  conv.bias.data = Float32Array.from(kb.bias);
  return conv;
}
