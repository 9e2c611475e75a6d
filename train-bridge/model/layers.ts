// Leaf layers of the FastViTHD definition (Conv2d, BatchNorm2d, Linear, LayerNormChannel, conv+BN) with
// PyTorch's tensor names and layouts: conv weight (out, in/groups, kH, kW), linear weight (out, in).

import { CounterTensor, HostTensor } from './host-tensor.ts';
import { Module } from './module.ts';

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
  groups?: number;
  bias?: boolean;
}

export class Conv2d extends Module {
  readonly kind = 'Conv2d';
  readonly stride: number;
  readonly padding: number;
  readonly groups: number;
  readonly weight: HostTensor;
  readonly bias: HostTensor | undefined;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    options: Conv2dOptions = {},
  ) {
    super();
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    this.groups = options.groups ?? 1;
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new RangeError(
        `Conv2d ${inChannels}→${outChannels}: groups ${this.groups} must divide both channel counts`,
      );
    }
    this.weight = this.registerParameter(
      'weight',
      new HostTensor([outChannels, inChannels / this.groups, kernelSize, kernelSize]),
    );
    this.bias = options.bias ? this.registerParameter('bias', new HostTensor([outChannels])) : undefined;
  }

  /** Fan-in of one output unit (PyTorch's default init draws from ±1/√fanIn). */
  get fanIn(): number {
    return (this.inChannels / this.groups) * this.kernelSize * this.kernelSize;
  }
}

/** BatchNorm2d: affine weight/bias, running statistics, and the int64 batch counter PyTorch saves. */
export class BatchNorm2d extends Module {
  readonly kind = 'BatchNorm2d';
  readonly weight: HostTensor;
  readonly bias: HostTensor;
  readonly runningMean: HostTensor;
  readonly runningVar: HostTensor;
  readonly numBatchesTracked: CounterTensor;

  constructor(
    readonly numFeatures: number,
    readonly eps = 1e-5,
    readonly momentum = 0.1,
  ) {
    super();
    this.weight = this.registerParameter('weight', new HostTensor([numFeatures], undefined, 1));
    this.bias = this.registerParameter('bias', new HostTensor([numFeatures]));
    this.runningMean = this.registerBuffer('running_mean', new HostTensor([numFeatures]));
    this.runningVar = this.registerBuffer('running_var', new HostTensor([numFeatures], undefined, 1));
    this.numBatchesTracked = this.registerBuffer('num_batches_tracked', new CounterTensor());
  }
}

export class Linear extends Module {
  readonly kind = 'Linear';
  readonly weight: HostTensor;
  readonly bias: HostTensor | undefined;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    bias = true,
  ) {
    super();
    this.weight = this.registerParameter('weight', new HostTensor([outFeatures, inFeatures]));
    this.bias = bias ? this.registerParameter('bias', new HostTensor([outFeatures])) : undefined;
  }
}

/** Layer norm over the channel axis at each pixel of an NCHW map (the reference's LayerNormChannel). */
export class LayerNormChannel extends Module {
  readonly kind = 'LayerNormChannel';
  readonly weight: HostTensor;
  readonly bias: HostTensor;

  constructor(
    readonly numFeatures: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.weight = this.registerParameter('weight', new HostTensor([numFeatures], undefined, 1));
    this.bias = this.registerParameter('bias', new HostTensor([numFeatures]));
  }
}

/** Bias-free conv followed by BatchNorm: the reference's nn.Sequential(conv, bn). */
export class ConvBN extends Module {
  readonly kind = 'ConvBN';
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;

  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: number,
    options: Omit<Conv2dOptions, 'bias'>,
  ) {
    super();
    this.conv = this.registerModule(
      'conv',
      new Conv2d(inChannels, outChannels, kernelSize, { ...options, bias: false }),
    );
    this.bn = this.registerModule('bn', new BatchNorm2d(outChannels));
  }
}
