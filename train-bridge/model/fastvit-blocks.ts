// FastViT's metaformer pieces as used by FastViTHD: RepMixer and attention blocks, ConvFFN, MHSA, the
// conditional positional encoding RepCPE and the downsampling PatchEmbed, named as the reference names them.

import { HostTensor } from './host-tensor.ts';
import { Conv2d, ConvBN, LayerNormChannel, Linear } from './layers.ts';
import { MobileOneBlock, ReparamLargeKernelConv } from './mobileone.ts';
import { Module, ModuleList } from './module.ts';

/** 7×7 depthwise ConvBN → 1×1 conv C→hidden (bias) → GELU → 1×1 conv hidden→C (bias). */
/** A block that folds into one depthwise k×k convolution with bias at inference (RepMixer, RepCPE). */
abstract class DepthwiseReparam extends Module {
  reparamConv: Conv2d | undefined;

  constructor(
    readonly dim: number,
    readonly kernelSize: number,
  ) {
    super();
  }

  get inferenceMode(): boolean {
    return this.reparamConv !== undefined;
  }

  /** The depthwise conv of the inference form. */
  makeConv(): Conv2d {
    return new Conv2d(this.dim, this.dim, this.kernelSize, {
      padding: this.kernelSize >> 1,
      groups: this.dim,
      bias: true,
    });
  }
}

export class ConvFFN extends Module {
  readonly kind = 'ConvFFN';
  readonly conv: ConvBN;
  readonly fc1: Conv2d;
  readonly fc2: Conv2d;

  constructor(
    readonly channels: number,
    readonly hiddenChannels: number,
  ) {
    super();
    this.conv = this.registerModule(
      'conv',
      new ConvBN(channels, channels, 7, { padding: 3, groups: channels }),
    );
    this.fc1 = this.registerModule('fc1', new Conv2d(channels, hiddenChannels, 1, { bias: true }));
    this.fc2 = this.registerModule('fc2', new Conv2d(hiddenChannels, channels, 1, { bias: true }));
  }
}

/** Multi-head self-attention over all H·W positions; qkv without bias, output projection with bias. */
export class MHSA extends Module {
  readonly kind = 'MHSA';
  readonly numHeads: number;
  readonly qkv: Linear;
  readonly proj: Linear;

  constructor(
    readonly dim: number,
    readonly headDim: number,
  ) {
    super();
    if (dim % headDim !== 0)
      throw new RangeError(`MHSA: dim ${dim} is not a multiple of head dim ${headDim}`);
    this.numHeads = dim / headDim;
    this.qkv = this.registerModule('qkv', new Linear(dim, dim * 3, false));
    this.proj = this.registerModule('proj', new Linear(dim, dim, true));
  }
}

function layerScale(dim: number, init: number): HostTensor {
  // (C, 1, 1) as in the reference, so it broadcasts over NCHW maps and loads into PyTorch unchanged.
  return new HostTensor([dim, 1, 1], undefined, init);
}

/**
 * x + γ ⊙ (mixer(x) − norm(x)): norm is a MobileOneBlock with only its skip BN, mixer a depthwise k×k
 * MobileOneBlock without activation. Inference form: one depthwise k×k conv with bias [reparam_conv].
 */
export class RepMixer extends DepthwiseReparam {
  readonly kind = 'RepMixer';
  norm: MobileOneBlock | undefined;
  mixer: MobileOneBlock | undefined;
  layerScale: HostTensor | undefined;

  constructor(dim: number, kernelSize: number, layerScaleInit: number, inferenceMode: boolean) {
    super(dim, kernelSize);
    if (inferenceMode) {
      this.reparamConv = this.registerModule('reparam_conv', this.makeConv());
      return;
    }
    this.layerScale = this.registerParameter('layer_scale', layerScale(dim, layerScaleInit));
    const depthwise = {
      inChannels: dim,
      outChannels: dim,
      kernelSize,
      padding: kernelSize >> 1,
      groups: dim,
    };
    this.norm = this.registerModule(
      'norm',
      new MobileOneBlock({ ...depthwise, activation: 'identity', useScaleBranch: false, numConvBranches: 0 }),
    );
    this.mixer = this.registerModule('mixer', new MobileOneBlock({ ...depthwise, activation: 'identity' }));
  }

  adoptReparamConv(conv: Conv2d): void {
    this.removeModule('norm');
    this.removeModule('mixer');
    this.removeParameter('layer_scale');
    this.norm = undefined;
    this.mixer = undefined;
    this.layerScale = undefined;
    this.reparamConv = this.registerModule('reparam_conv', conv);
  }
}

export class RepMixerBlock extends Module {
  readonly kind = 'RepMixerBlock';
  readonly tokenMixer: RepMixer;
  readonly convffn: ConvFFN;
  readonly layerScale: HostTensor;

  constructor(
    dim: number,
    o: { kernelSize: number; mlpRatio: number; layerScaleInit: number; inferenceMode: boolean },
  ) {
    super();
    this.layerScale = this.registerParameter('layer_scale', layerScale(dim, o.layerScaleInit));
    this.tokenMixer = this.registerModule(
      'token_mixer',
      new RepMixer(dim, o.kernelSize, o.layerScaleInit, o.inferenceMode),
    );
    this.convffn = this.registerModule('convffn', new ConvFFN(dim, Math.trunc(dim * o.mlpRatio)));
  }
}

/** x ← x + γ₁ ⊙ MHSA(LN(x)); x ← x + γ₂ ⊙ ConvFFN(x). Identical in both forms. */
export class AttentionBlock extends Module {
  readonly kind = 'AttentionBlock';
  readonly layerScale1: HostTensor;
  readonly layerScale2: HostTensor;
  readonly norm: LayerNormChannel;
  readonly tokenMixer: MHSA;
  readonly convffn: ConvFFN;

  constructor(dim: number, o: { headDim: number; mlpRatio: number; layerScaleInit: number }) {
    super();
    this.layerScale1 = this.registerParameter('layer_scale_1', layerScale(dim, o.layerScaleInit));
    this.layerScale2 = this.registerParameter('layer_scale_2', layerScale(dim, o.layerScaleInit));
    this.norm = this.registerModule('norm', new LayerNormChannel(dim));
    this.tokenMixer = this.registerModule('token_mixer', new MHSA(dim, o.headDim));
    this.convffn = this.registerModule('convffn', new ConvFFN(dim, Math.trunc(dim * o.mlpRatio)));
  }
}

/** Conditional positional encoding: x + depthwise k×k conv (bias) [pe]; inference: one conv [reparam_conv]. */
export class RepCPE extends DepthwiseReparam {
  readonly kind = 'RepCPE';
  pe: Conv2d | undefined;

  constructor(dim: number, kernelSize: number, inferenceMode: boolean) {
    super(dim, kernelSize);
    if (inferenceMode) this.reparamConv = this.registerModule('reparam_conv', this.makeConv());
    else this.pe = this.registerModule('pe', this.makeConv());
  }

  adoptReparamConv(conv: Conv2d): void {
    this.removeModule('pe');
    this.pe = undefined;
    this.reparamConv = this.registerModule('reparam_conv', conv);
  }
}

/** Downsampling between stages: ReparamLargeKernelConv(C→C', stride 2, groups C) then a 1×1 MobileOneBlock. */
export class PatchEmbed extends Module {
  readonly kind = 'PatchEmbed';
  readonly largeKernel: ReparamLargeKernelConv;
  readonly pointwise: MobileOneBlock;

  constructor(o: {
    patchSize: number;
    stride: number;
    inChannels: number;
    embedDim: number;
    inferenceMode: boolean;
  }) {
    super();
    this.largeKernel = new ReparamLargeKernelConv({
      inChannels: o.inChannels,
      outChannels: o.embedDim,
      kernelSize: o.patchSize,
      stride: o.stride,
      groups: o.inChannels,
      smallKernel: 3,
      inferenceMode: o.inferenceMode,
    });
    this.pointwise = new MobileOneBlock({
      inChannels: o.embedDim,
      outChannels: o.embedDim,
      kernelSize: 1,
      inferenceMode: o.inferenceMode,
    });
    this.registerModule('proj', new ModuleList<Module>([this.largeKernel, this.pointwise]));
  }
}
