// Output shapes and FLOPs of FastViTHD, computed by running the shared forward graph on shapes only.
// FLOPs = 2 × multiply-accumulates of convolutions, linears and the two attention matmuls (q·kᵀ, attn·v);
// normalisations, activations, softmax and elementwise adds are not counted (the usual convention).
import {
  type FastViTHD,
  type FastViTHDConfig,
  FastViTHD as FastViTHDModel,
  modelConfig,
} from './fastvithd.ts';
import { type ForwardBackend, forwardFastViTHD } from './forward.ts';
import { shapeString } from './host-tensor.ts';
import type { BatchNorm2d, Conv2d, LayerNormChannel, Linear } from './layers.ts';
import { countParameters } from './module.ts';

export interface ShapeOnly {
  readonly shape: readonly number[];
}

/** A backend that only propagates shapes and counts multiply-accumulates. */
export class ShapeOps implements ForwardBackend<ShapeOnly> {
  macs = 0;

  spatialSize(x: ShapeOnly): [number, number] {
    return [x.shape[2], x.shape[3]];
  }

  conv2d(x: ShapeOnly, conv: Conv2d): ShapeOnly {
    const [n, c, h, w] = x.shape;
    if (c !== conv.inChannels)
      throw new RangeError(`conv2d: input ${shapeString(x.shape)}, expected ${conv.inChannels} channels`);
    const ho = Math.floor((h + 2 * conv.padding - conv.kernelSize) / conv.stride) + 1;
    const wo = Math.floor((w + 2 * conv.padding - conv.kernelSize) / conv.stride) + 1;
    if (ho <= 0 || wo <= 0)
      throw new RangeError(`conv2d: input ${h}×${w} is too small for kernel ${conv.kernelSize}`);
    this.macs += n * conv.outChannels * ho * wo * (conv.inChannels / conv.groups) * conv.kernelSize ** 2;
    return { shape: [n, conv.outChannels, ho, wo] };
  }

  conv2dGelu(x: ShapeOnly, conv: Conv2d): ShapeOnly {
    return this.gelu(this.conv2d(x, conv));
  }

  batchNorm2d(x: ShapeOnly, _bn: BatchNorm2d): ShapeOnly {
    return x;
  }

  layerNormChannel(x: ShapeOnly, _ln: LayerNormChannel): ShapeOnly {
    return x;
  }

  gelu(x: ShapeOnly): ShapeOnly {
    return x;
  }

  relu(x: ShapeOnly): ShapeOnly {
    return x;
  }

  sigmoid(x: ShapeOnly): ShapeOnly {
    return x;
  }

  add(a: ShapeOnly, b: ShapeOnly): ShapeOnly {
    return same(a, b, 'add');
  }

  sub(a: ShapeOnly, b: ShapeOnly): ShapeOnly {
    return same(a, b, 'sub');
  }

  scaleChannels(x: ShapeOnly): ShapeOnly {
    return x;
  }

  batchNorm2dAdd(x: ShapeOnly, bn: BatchNorm2d, addend: ShapeOnly): ShapeOnly {
    return this.add(addend, this.batchNorm2d(x, bn));
  }

  addScaled(x: ShapeOnly, y: ShapeOnly): ShapeOnly {
    return this.add(x, y);
  }

  addScaledConv(x: ShapeOnly, h: ShapeOnly, conv: Conv2d): ShapeOnly {
    return this.addScaled(x, this.conv2d(h, conv));
  }

  addAll(xs: ShapeOnly[]): ShapeOnly {
    return xs.reduce((a, b) => this.add(a, b));
  }

  meanSpatial(x: ShapeOnly): ShapeOnly {
    return { shape: [x.shape[0], x.shape[1], 1, 1] };
  }

  mulChannels(x: ShapeOnly): ShapeOnly {
    return x;
  }

  toTokens(x: ShapeOnly): ShapeOnly {
    const [n, c, h, w] = x.shape;
    return { shape: [n, h * w, c] };
  }

  fromTokens(x: ShapeOnly, height: number, width: number): ShapeOnly {
    return { shape: [x.shape[0], x.shape[2], height, width] };
  }

  linear(x: ShapeOnly, linear: Linear): ShapeOnly {
    const rows = x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
    this.macs += rows * linear.inFeatures * linear.outFeatures;
    return { shape: [...x.shape.slice(0, -1), linear.outFeatures] };
  }

  multiHeadAttention(qkv: ShapeOnly, numHeads: number, headDim: number): ShapeOnly {
    const [n, l] = qkv.shape;
    this.macs += 2 * n * numHeads * l * l * headDim;
    return { shape: [n, l, numHeads * headDim] };
  }
}

function same(a: ShapeOnly, b: ShapeOnly, op: string): ShapeOnly {
  if (shapeString(a.shape) !== shapeString(b.shape)) {
    throw new RangeError(`${op}: shapes ${shapeString(a.shape)} and ${shapeString(b.shape)} differ`);
  }
  return a;
}

/** Output shape and FLOPs of one image (batch 1) through `model` in its current form. */
export function profileForward(
  model: FastViTHD,
  height: number,
  width = height,
): { shape: number[]; flops: number } {
  const ops = new ShapeOps();
  const out = forwardFastViTHD(model, { shape: [1, 3, height, width] }, ops);
  return { shape: [...out.shape], flops: 2 * ops.macs };
}

export interface ModelInfo {
  model: string;
  resolution: number;
  /** Trainable parameters of the train-time (multi-branch) form, as PyTorch's parameters() counts them. */
  params: number;
  /** The same after reparameterisation. */
  paramsInference: number;
  /** Output positions H/64 · W/64 (the LLM's image tokens). */
  tokens: number;
  /** Channels of each output token. */
  channels: number;
  /** FLOPs per image of the train-time form's forward pass (2 × multiply-accumulates). */
  flops: number;
  /** FLOPs per image of the reparameterised form. */
  flopsInference: number;
}

/** Parameter counts, output size and FLOPs, from the module trees (no weights are allocated). */
export function modelInfo(config: FastViTHDConfig | string, resolution: number): ModelInfo {
  const c = typeof config === 'string' ? modelConfig(config) : config;
  if (!Number.isInteger(resolution) || resolution <= 0) {
    throw new RangeError(`resolution must be a positive integer, got ${resolution}`);
  }
  const train = new FastViTHDModel(c);
  const inference = new FastViTHDModel(c, { inferenceMode: true });
  const trainProfile = profileForward(train, resolution);
  const inferenceProfile = profileForward(inference, resolution);
  const [, channels, h, w] = trainProfile.shape;
  return {
    model: c.name,
    resolution,
    params: countParameters(train),
    paramsInference: countParameters(inference),
    tokens: h * w,
    channels,
    flops: trainProfile.flops,
    flopsInference: inferenceProfile.flops,
  };
}
