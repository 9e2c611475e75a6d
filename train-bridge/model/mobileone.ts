// The structurally reparameterisable convolutions of FastViTHD: MobileOneBlock (skip BN + 1×1 scale + k×k
// conv branches), ReparamLargeKernelConv (7×7 + 3×3) and the SE gate used by the final expansion.
import { BatchNorm2d, Conv2d, ConvBN } from './layers.ts';
import { Module, ModuleList } from './module.ts';

export type Activation = 'gelu' | 'identity';

/** Squeeze-and-excite: global average pool → 1×1 conv C→C·r (ReLU) → 1×1 conv back (sigmoid) → scale. */
export class SEBlock extends Module {
  readonly kind = 'SEBlock';
  readonly reduce: Conv2d;
  readonly expand: Conv2d;

  constructor(
    readonly channels: number,
    rdRatio = 0.0625,
  ) {
    super();
    // int(in_channels * rd_ratio) in the reference: truncation, not rounding.
    const reduced = Math.trunc(channels * rdRatio);
    this.reduce = this.registerModule('reduce', new Conv2d(channels, reduced, 1, { bias: true }));
    this.expand = this.registerModule('expand', new Conv2d(reduced, channels, 1, { bias: true }));
  }
}

export interface MobileOneBlockOptions {
  inChannels: number;
  outChannels: number;
  kernelSize: number;
  stride?: number;
  padding?: number;
  groups?: number;
  useSE?: boolean;
  activation?: Activation;
  useScaleBranch?: boolean;
  numConvBranches?: number;
  inferenceMode?: boolean;
}

/**
 * act(se(skip + scale + Σ conv)). The skip BN exists only when in = out and stride 1; the 1×1 scale branch
 * only when k > 1 and enabled. Inference form: act(se(reparam_conv(x))) with one biased k×k conv.
 */
export class MobileOneBlock extends Module {
  readonly kind = 'MobileOneBlock';
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  readonly stride: number;
  readonly padding: number;
  readonly groups: number;
  readonly activation: Activation;
  readonly se: SEBlock | undefined;
  rbrSkip: BatchNorm2d | undefined;
  rbrConv: ConvBN[];
  rbrScale: ConvBN | undefined;
  reparamConv: Conv2d | undefined;

  constructor(o: MobileOneBlockOptions) {
    super();
    this.inChannels = o.inChannels;
    this.outChannels = o.outChannels;
    this.kernelSize = o.kernelSize;
    this.stride = o.stride ?? 1;
    this.padding = o.padding ?? 0;
    this.groups = o.groups ?? 1;
    this.activation = o.activation ?? 'gelu';
    // Registration order follows the reference (se first), which fixes the state_dict order.
    this.se = o.useSE ? this.registerModule('se', new SEBlock(o.outChannels)) : undefined;
    this.rbrConv = [];
    if (o.inferenceMode) {
      this.reparamConv = this.registerModule(
        'reparam_conv',
        this.makeConv(this.kernelSize, this.padding, true),
      );
      return;
    }
    this.rbrSkip =
      o.inChannels === o.outChannels && this.stride === 1
        ? this.registerModule('rbr_skip', new BatchNorm2d(o.inChannels))
        : undefined;
    const branches = o.numConvBranches ?? 1;
    if (branches > 0) {
      for (let i = 0; i < branches; i++) {
        this.rbrConv.push(
          new ConvBN(this.inChannels, this.outChannels, this.kernelSize, {
            stride: this.stride,
            padding: this.padding,
            groups: this.groups,
          }),
        );
      }
      this.registerModule('rbr_conv', new ModuleList(this.rbrConv));
    }
    if (this.kernelSize > 1 && (o.useScaleBranch ?? true)) {
      this.rbrScale = this.registerModule(
        'rbr_scale',
        new ConvBN(this.inChannels, this.outChannels, 1, {
          stride: this.stride,
          padding: 0,
          groups: this.groups,
        }),
      );
    }
  }

  get inferenceMode(): boolean {
    return this.reparamConv !== undefined;
  }

  makeConv(kernelSize: number, padding: number, bias: boolean): Conv2d {
    return new Conv2d(this.inChannels, this.outChannels, kernelSize, {
      stride: this.stride,
      padding,
      groups: this.groups,
      bias,
    });
  }

  /** Swap the branches for one folded conv (the math lives in reparameterize.ts). */
  adoptReparamConv(conv: Conv2d): void {
    this.removeModule('rbr_conv');
    this.removeModule('rbr_scale');
    this.removeModule('rbr_skip');
    this.rbrConv = [];
    this.rbrScale = undefined;
    this.rbrSkip = undefined;
    this.reparamConv = this.registerModule('reparam_conv', conv);
  }
}

export interface ReparamLargeKernelConvOptions {
  inChannels: number;
  outChannels: number;
  kernelSize: number;
  stride: number;
  groups: number;
  smallKernel: number;
  inferenceMode?: boolean;
}

/** RepLKNet-style large kernel: GELU(ConvBN_k×k(x) + ConvBN_small(x)); inference: GELU(lkb_reparam(x)). */
export class ReparamLargeKernelConv extends Module {
  readonly kind = 'ReparamLargeKernelConv';
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  readonly smallKernel: number;
  readonly stride: number;
  readonly groups: number;
  readonly activation: Activation = 'gelu';
  lkbOrigin: ConvBN | undefined;
  smallConv: ConvBN | undefined;
  lkbReparam: Conv2d | undefined;

  constructor(o: ReparamLargeKernelConvOptions) {
    super();
    if (o.smallKernel > o.kernelSize)
      throw new RangeError('the small kernel cannot be larger than the large kernel');
    this.inChannels = o.inChannels;
    this.outChannels = o.outChannels;
    this.kernelSize = o.kernelSize;
    this.smallKernel = o.smallKernel;
    this.stride = o.stride;
    this.groups = o.groups;
    if (o.inferenceMode) {
      this.lkbReparam = this.registerModule('lkb_reparam', this.makeConv(this.kernelSize, true));
      return;
    }
    const shared = { stride: this.stride, groups: this.groups };
    this.lkbOrigin = this.registerModule(
      'lkb_origin',
      new ConvBN(o.inChannels, o.outChannels, o.kernelSize, { ...shared, padding: o.kernelSize >> 1 }),
    );
    this.smallConv = this.registerModule(
      'small_conv',
      new ConvBN(o.inChannels, o.outChannels, o.smallKernel, { ...shared, padding: o.smallKernel >> 1 }),
    );
  }

  get inferenceMode(): boolean {
    return this.lkbReparam !== undefined;
  }

  makeConv(kernelSize: number, bias: boolean): Conv2d {
    return new Conv2d(this.inChannels, this.outChannels, kernelSize, {
      stride: this.stride,
      padding: kernelSize >> 1,
      groups: this.groups,
      bias,
    });
  }

  adoptReparamConv(conv: Conv2d): void {
    this.removeModule('lkb_origin');
    this.removeModule('small_conv');
    this.lkbOrigin = undefined;
    this.smallConv = undefined;
    this.lkbReparam = this.registerModule('lkb_reparam', conv);
  }
}
