// The FastViTHD forward pass written once against an abstract op set: the CPU reference (cpu-backend.ts), the
// shape/FLOP walker (flops.ts) and the WebGPU engine each supply the ops. Logical layout is NCHW.
import {
  AttentionBlock,
  ConvFFN,
  MHSA,
  PatchEmbed,
  RepCPE,
  RepMixer,
  RepMixerBlock,
} from './fastvit-blocks.ts';
import { FastViTHD } from './fastvithd.ts';
import type { HostTensor } from './host-tensor.ts';
import { BatchNorm2d, Conv2d, ConvBN, LayerNormChannel, type Linear } from './layers.ts';
import { type Activation, MobileOneBlock, ReparamLargeKernelConv, SEBlock } from './mobileone.ts';
import { type Module, ModuleList } from './module.ts';
import { FastVLMProjector } from './projector.ts';

/**
 * What a backend must provide. `T` is the backend's tensor handle; shapes below are logical NCHW
 * ([N, C, H, W]) for feature maps and [N, L, D] for token sequences. Parameters arrive as the module's
 * HostTensors (PyTorch layout); a device backend maps them to its own copies by identity.
 */
export interface ForwardBackend<T> {
  /** [height, width] of a feature map (the backend knows its own layout). */
  spatialSize(x: T): [number, number];
  /** Conv with the module's weight (O, I/groups, k, k), optional bias, stride, padding and groups. */
  conv2d(x: T, conv: Conv2d): T;
  /** gelu(conv2d(x, conv)): a device folds the conv's bias add into the activation. */
  conv2dGelu(x: T, conv: Conv2d): T;
  /** BatchNorm: the backend decides eval (running statistics) or train mode (batch statistics + update). */
  batchNorm2d(x: T, bn: BatchNorm2d): T;
  /** addend + batchNorm2d(x, bn): a branch sum that ends in a BN (one kernel on a device in train mode). */
  batchNorm2dAdd(x: T, bn: BatchNorm2d, addend: T): T;
  layerNormChannel(x: T, ln: LayerNormChannel): T;
  gelu(x: T): T;
  relu(x: T): T;
  sigmoid(x: T): T;
  add(a: T, b: T): T;
  sub(a: T, b: T): T;
  /** x · γ with a per-channel layer scale γ of shape (C, 1, 1). */
  scaleChannels(x: T, scale: HostTensor): T;
  /** x + y · γ: add(x, scaleChannels(y, γ)), a residual with layer scale (one kernel on a device). */
  addScaled(x: T, y: T, scale: HostTensor): T;
  /** x + conv2d(h, conv) · γ: a residual whose branch ends in a conv (its bias add fused on a device). */
  addScaledConv(x: T, h: T, conv: Conv2d, scale: HostTensor): T;
  /** ((a + b) + c) + …: the sum of same-shape tensors in this order (a block's branches). */
  addAll(xs: T[]): T;
  /** [N, C, H, W] → [N, C, 1, 1] mean over space. */
  meanSpatial(x: T): T;
  /** x [N, C, H, W] · gate [N, C, 1, 1]. */
  mulChannels(x: T, gate: T): T;
  /** [N, C, H, W] → [N, H·W, C] (PyTorch: flatten(2).transpose(-2, -1)). */
  toTokens(x: T): T;
  /** [N, H·W, C] → [N, C, H, W]. */
  fromTokens(x: T, height: number, width: number): T;
  /** [N, L, in] → [N, L, out] with weight (out, in) and optional bias. */
  linear(x: T, linear: Linear): T;
  /**
   * qkv [N, L, 3·heads·headDim] laid out as (3, heads, headDim) along the last axis → [N, L, heads·headDim]:
   * softmax((q·headDim^-½)·kᵀ)·v per head, heads concatenated.
   */
  multiHeadAttention(qkv: T, numHeads: number, headDim: number): T;
}

/** The image embedding (N, 2·C5, H/64, W/64) of a batch of images (N, 3, H, W). */
export function forwardFastViTHD<T>(model: FastViTHD, images: T, ops: ForwardBackend<T>): T {
  return forwardModule(model, images, ops);
}

/**
 * The LLM-side image tokens: embedding (N, C, h, w) → tokens (N, h·w, C) in FastVLM's order (row-major over
 * positions) → Linear → GELU → Linear → (N, h·w, d).
 */
export function forwardProjector<T>(projector: FastVLMProjector, embedding: T, ops: ForwardBackend<T>): T {
  return forwardModule(projector, ops.toTokens(embedding), ops);
}

/** Forward of any module of the FastViTHD tree (used by tests to check blocks one at a time). */
export function forwardModule<T>(module: Module, x: T, ops: ForwardBackend<T>): T {
  if (module instanceof FastViTHD) {
    let y = forwardModule(module.patchEmbed, x, ops);
    y = forwardModule(module.network, y, ops);
    return forwardModule(module.convExp, y, ops);
  }
  if (module instanceof ModuleList) {
    let y = x;
    for (const m of module.items) y = forwardModule(m, y, ops);
    return y;
  }
  if (module instanceof FastVLMProjector) return ops.linear(ops.gelu(ops.linear(x, module.fc1)), module.fc2);
  if (module instanceof MobileOneBlock) return mobileOne(module, x, ops);
  if (module instanceof ReparamLargeKernelConv) return largeKernel(module, x, ops);
  if (module instanceof PatchEmbed)
    return forwardModule(module.pointwise, largeKernel(module.largeKernel, x, ops), ops);
  if (module instanceof RepMixerBlock) {
    const mixed = repMixer(module.tokenMixer, x, ops);
    return ops.addScaledConv(
      mixed,
      convFFNHidden(module.convffn, mixed, ops),
      module.convffn.fc2,
      module.layerScale,
    );
  }
  if (module instanceof AttentionBlock) {
    const attended = ops.addScaled(
      x,
      mhsa(module.tokenMixer, ops.layerNormChannel(x, module.norm), ops),
      module.layerScale1,
    );
    return ops.addScaledConv(
      attended,
      convFFNHidden(module.convffn, attended, ops),
      module.convffn.fc2,
      module.layerScale2,
    );
  }
  if (module instanceof RepCPE) {
    if (module.reparamConv) return ops.conv2d(x, module.reparamConv);
    return ops.add(ops.conv2d(x, module.pe!), x);
  }
  if (module instanceof RepMixer) return repMixer(module, x, ops);
  if (module instanceof ConvFFN) return convFFN(module, x, ops);
  if (module instanceof MHSA) return mhsa(module, x, ops);
  if (module instanceof SEBlock) return squeezeExcite(module, x, ops);
  if (module instanceof ConvBN) return convBN(module, x, ops);
  if (module instanceof Conv2d) return ops.conv2d(x, module);
  if (module instanceof BatchNorm2d) return ops.batchNorm2d(x, module);
  if (module instanceof LayerNormChannel) return ops.layerNormChannel(x, module);
  throw new TypeError(`no forward for module kind ${module.kind}`);
}

function activate<T>(x: T, act: Activation, ops: ForwardBackend<T>): T {
  return act === 'gelu' ? ops.gelu(x) : x;
}

function convBN<T>(m: ConvBN, x: T, ops: ForwardBackend<T>): T {
  return ops.batchNorm2d(ops.conv2d(x, m.conv), m.bn);
}

function mobileOne<T>(m: MobileOneBlock, x: T, ops: ForwardBackend<T>): T {
  let out: T;
  if (m.reparamConv) {
    out = ops.conv2d(x, m.reparamConv);
  } else {
    // Branch sum in the reference's order: scale + skip, then each conv branch.
    const branches: T[] = [];
    if (m.rbrScale) branches.push(convBN(m.rbrScale, x, ops));
    if (m.rbrSkip) branches.push(ops.batchNorm2d(x, m.rbrSkip));
    const last = m.rbrConv.at(-1);
    for (const b of m.rbrConv.slice(0, -1)) branches.push(convBN(b, x, ops));
    if (last && branches.length > 0) {
      // The last conv branch's BN adds the sum of the others (same order: the others, then it).
      out = ops.batchNorm2dAdd(ops.conv2d(x, last.conv), last.bn, ops.addAll(branches));
    } else {
      if (last) branches.push(convBN(last, x, ops));
      if (branches.length === 0) throw new TypeError('MobileOneBlock has no branch');
      out = ops.addAll(branches);
    }
  }
  if (m.se) out = squeezeExcite(m.se, out, ops);
  return activate(out, m.activation, ops);
}

function squeezeExcite<T>(se: SEBlock, x: T, ops: ForwardBackend<T>): T {
  let gate = ops.meanSpatial(x);
  gate = ops.relu(ops.conv2d(gate, se.reduce));
  gate = ops.sigmoid(ops.conv2d(gate, se.expand));
  return ops.mulChannels(x, gate);
}

function largeKernel<T>(m: ReparamLargeKernelConv, x: T, ops: ForwardBackend<T>): T {
  const out = m.lkbReparam
    ? ops.conv2d(x, m.lkbReparam)
    : ops.batchNorm2dAdd(ops.conv2d(x, m.smallConv!.conv), m.smallConv!.bn, convBN(m.lkbOrigin!, x, ops));
  return activate(out, m.activation, ops);
}

function repMixer<T>(m: RepMixer, x: T, ops: ForwardBackend<T>): T {
  if (m.reparamConv) return ops.conv2d(x, m.reparamConv);
  const mixed = ops.sub(mobileOne(m.mixer!, x, ops), mobileOne(m.norm!, x, ops));
  return ops.addScaled(x, mixed, m.layerScale!);
}

function convFFN<T>(m: ConvFFN, x: T, ops: ForwardBackend<T>): T {
  return ops.conv2d(convFFNHidden(m, x, ops), m.fc2);
}

/** ConvFFN up to fc2 (its blocks fuse fc2 into the residual). */
function convFFNHidden<T>(m: ConvFFN, x: T, ops: ForwardBackend<T>): T {
  return ops.conv2dGelu(convBN(m.conv, x, ops), m.fc1);
}

function mhsa<T>(m: MHSA, x: T, ops: ForwardBackend<T>): T {
  const [height, width] = ops.spatialSize(x);
  const tokens = ops.toTokens(x);
  const qkv = ops.linear(tokens, m.qkv);
  const attended = ops.multiHeadAttention(qkv, m.numHeads, m.headDim);
  const projected = ops.linear(attended, m.proj);
  return ops.fromTokens(projected, height, width);
}
