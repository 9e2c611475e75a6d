// FastViTHD (and the projector, text tower) on the WebGPU engine: a weight store that mirrors a module tree's
// HostTensors as engine tensors in the engine's layouts, and the ForwardOps<Tensor> the shared forward runs on.
import type { Engine } from '../gpu/engine.ts';
import type { BatchNormState } from '../gpu/ops/batch-norm.ts';
import * as ops from '../gpu/ops/index.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { ForwardOps } from './forward.ts';
import { BatchNorm2d, Conv2d, type LayerNormChannel, Linear } from './layers.ts';
import type { Module } from './module.ts';
import type { HostTensor } from './tensor.ts';

/** How a host tensor (PyTorch layout) maps to its engine copy. */
type Layout =
  /** Conv weight (O, I/g, kH, kW) ↔ HWIO [kH, kW, I/g, O]. */
  | 'conv'
  /** Linear weight (out, in) ↔ [in, out]. */
  | 'linear'
  /** Same values; the engine shape drops singleton dims ((C, 1, 1) layer scales become [C]). */
  | 'squeeze';

interface Entry {
  name: string;
  host: HostTensor;
  gpu: Tensor;
  layout: Layout;
  /** A trainable tensor (false for BN running statistics and frozen parts). */
  trainable: boolean;
}

/**
 * Engine copies of a module tree's tensors, found by identity of the HostTensor. BN running statistics live on
 * the GPU during training (batchNorm updates them in place) and are copied back by `download()`.
 */
export class GpuWeights {
  private readonly entries = new Map<HostTensor, Entry>();
  private readonly bnStates = new Map<BatchNorm2d, BatchNormState>();

  constructor(readonly eng: Engine) {}

  /** Upload every tensor of `root` (names prefixed with `prefix`); `trainable: false` freezes them. */
  add(root: Module, opts: { prefix?: string; trainable: boolean }): void {
    const prefix = opts.prefix ?? '';
    const layouts = new Map<HostTensor, Layout>();
    for (const [, m] of root.namedModules()) {
      if (m instanceof Conv2d) layouts.set(m.weight, 'conv');
      else if (m instanceof Linear) layouts.set(m.weight, 'linear');
    }
    for (const [name, host] of root.namedParameters()) {
      this.put(prefix + name, host, layouts.get(host) ?? 'squeeze', opts.trainable);
    }
    for (const [, m] of root.namedModules()) {
      if (!(m instanceof BatchNorm2d)) continue;
      this.bnStates.set(m, {
        weight: this.tensor(m.weight),
        bias: this.tensor(m.bias),
        runningMean: this.eng.keep(this.eng.upload(m.runningMean.data, [m.numFeatures])),
        runningVar: this.eng.keep(this.eng.upload(m.runningVar.data, [m.numFeatures])),
        momentum: m.momentum,
        eps: m.eps,
      });
    }
  }

  private put(name: string, host: HostTensor, layout: Layout, trainable: boolean): void {
    if (this.entries.has(host)) throw new Error(`GpuWeights: ${name} is already uploaded`);
    const gpu = this.eng.parameter(toEngineLayout(host, layout), engineShape(host, layout), name);
    gpu.requiresGrad = trainable;
    this.entries.set(host, { name, host, gpu, layout, trainable });
  }

  /** The engine copy of a model tensor. */
  tensor(host: HostTensor): Tensor {
    const e = this.entries.get(host);
    if (!e) throw new Error(`GpuWeights: tensor of shape [${host.shape.join(', ')}] was never uploaded`);
    return e.gpu;
  }

  batchNorm(bn: BatchNorm2d): BatchNormState {
    const s = this.bnStates.get(bn);
    if (!s) throw new Error(`GpuWeights: BatchNorm2d(${bn.numFeatures}) was never uploaded`);
    return s;
  }

  /** Trainable engine tensors with their state_dict-style names, in upload order (the optimiser's order). */
  trainable(): Array<{ name: string; tensor: Tensor }> {
    return [...this.entries.values()]
      .filter((e) => e.trainable)
      .map((e) => ({ name: e.name, tensor: e.gpu }));
  }

  /** The accumulated gradient of a model tensor in the host (PyTorch) layout; undefined before any backward. */
  async gradient(host: HostTensor): Promise<Float32Array | undefined> {
    const e = this.entries.get(host);
    if (!e) throw new Error(`GpuWeights: tensor of shape [${host.shape.join(', ')}] was never uploaded`);
    return e.gpu.grad ? fromEngineLayout(await e.gpu.grad.read(), host, e.layout) : undefined;
  }

  /** Copy the engine's values (parameters and running statistics) back into the host tensors. */
  async download(): Promise<void> {
    for (const e of this.entries.values())
      e.host.data = fromEngineLayout(await e.gpu.read(), e.host, e.layout);
    for (const [bn, s] of this.bnStates) {
      bn.runningMean.data = await s.runningMean.read();
      bn.runningVar.data = await s.runningVar.read();
    }
  }

  /** Overwrite the engine copies with the host values (after loading a state_dict into the host tree). */
  upload(): void {
    for (const e of this.entries.values()) writeTensor(e.gpu, toEngineLayout(e.host, e.layout));
    for (const [bn, s] of this.bnStates) {
      writeTensor(s.runningMean, bn.runningMean.data);
      writeTensor(s.runningVar, bn.runningVar.data);
    }
  }
}

/** Write values into an existing tensor's buffer (kept tensors the optimiser already references). */
function writeTensor(t: Tensor, data: Float32Array): void {
  if (data.length !== t.size) throw new Error(`writeTensor: ${data.length} values for ${t.size}`);
  // Queue order: commands recorded so far must run before the buffer changes.
  t.engine.flush();
  t.engine.device.queue.writeBuffer(t.storage.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
}

function engineShape(host: HostTensor, layout: Layout): number[] {
  const s = host.shape;
  if (layout === 'conv') return [s[2], s[3], s[1], s[0]];
  if (layout === 'linear') return [s[1], s[0]];
  const kept = s.filter((d) => d !== 1);
  return kept.length > 0 ? kept : [1];
}

function toEngineLayout(host: HostTensor, layout: Layout): Float32Array {
  const src = host.data;
  if (layout === 'squeeze') return src;
  const out = new Float32Array(src.length);
  if (layout === 'linear') {
    const [o, i] = host.shape;
    for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) out[c * o + r] = src[r * i + c];
    return out;
  }
  const [o, i, kh, kw] = host.shape;
  for (let a = 0; a < o; a++)
    for (let b = 0; b < i; b++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++)
          out[((y * kw + x) * i + b) * o + a] = src[((a * i + b) * kh + y) * kw + x];
  return out;
}

function fromEngineLayout(data: Float32Array, host: HostTensor, layout: Layout): Float32Array {
  if (layout === 'squeeze') return data;
  const out = new Float32Array(data.length);
  if (layout === 'linear') {
    const [o, i] = host.shape;
    for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) out[r * i + c] = data[c * o + r];
    return out;
  }
  const [o, i, kh, kw] = host.shape;
  for (let a = 0; a < o; a++)
    for (let b = 0; b < i; b++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++)
          out[((a * i + b) * kh + y) * kw + x] = data[((y * kw + x) * i + b) * o + a];
  return out;
}

/**
 * 'eval': running statistics. 'train': batch statistics, running statistics updated (PyTorch's train()).
 * 'batch': batch statistics with the running statistics left alone (evaluating a model as it trains).
 */
export type GpuBatchNormMode = 'eval' | 'train' | 'batch';

/**
 * ForwardOps on the engine. Feature maps are NHWC [N, H, W, C] (the interface's logical NCHW shapes map onto
 * them), so tokens are a free reshape. Images come in as [N, H, W, 3].
 */
export class GpuOps implements ForwardOps<Tensor> {
  /** Selector rows that pick q, k or v out of the stacked [3, …] qkv values with a K = 3 matmul. */
  private readonly selectors: Tensor[];

  constructor(
    readonly weights: GpuWeights,
    readonly batchNormMode: GpuBatchNormMode,
  ) {
    const eng = weights.eng;
    this.selectors = [0, 1, 2].map((i) =>
      eng.keep(
        eng.upload(
          Float32Array.from([0, 1, 2], (j) => (j === i ? 1 : 0)),
          [1, 3],
        ),
      ),
    );
  }

  dispose(): void {
    for (const s of this.selectors) s.dispose();
  }

  spatialSize(x: Tensor): [number, number] {
    return [x.shape[1] as number, x.shape[2] as number];
  }

  conv2d(x: Tensor, conv: Conv2d): Tensor {
    const y = ops.conv2d(x, this.weights.tensor(conv.weight), {
      stride: conv.stride,
      padding: conv.padding,
      groups: conv.groups,
    });
    return conv.bias ? ops.add(y, this.weights.tensor(conv.bias)) : y;
  }

  batchNorm2d(x: Tensor, bn: BatchNorm2d): Tensor {
    const state = this.weights.batchNorm(bn);
    if (this.batchNormMode === 'eval') return ops.batchNorm(x, state, false);
    if (this.batchNormMode === 'train') {
      // PyTorch counts batches seen in train mode; the counter is host-side state saved with the weights.
      bn.numBatchesTracked.value += 1n;
      return ops.batchNorm(x, state, true);
    }
    // The engine's training mode always updates running statistics: give it throwaway copies.
    const eng = x.engine;
    const runningMean = eng.clone(state.runningMean);
    const runningVar = eng.clone(state.runningVar);
    const y = ops.batchNorm(x, { ...state, runningMean, runningVar }, true);
    runningMean.dispose();
    runningVar.dispose();
    return y;
  }

  layerNormChannel(x: Tensor, ln: LayerNormChannel): Tensor {
    return ops.layerNormChannel(x, this.weights.tensor(ln.weight), this.weights.tensor(ln.bias), ln.eps);
  }

  gelu(x: Tensor): Tensor {
    return ops.gelu(x);
  }

  relu(x: Tensor): Tensor {
    return ops.relu(x);
  }

  sigmoid(x: Tensor): Tensor {
    return ops.sigmoid(x);
  }

  add(a: Tensor, b: Tensor): Tensor {
    return ops.add(a, b);
  }

  sub(a: Tensor, b: Tensor): Tensor {
    return ops.sub(a, b);
  }

  scaleChannels(x: Tensor, scale: HostTensor): Tensor {
    return ops.mul(x, this.weights.tensor(scale));
  }

  meanSpatial(x: Tensor): Tensor {
    const [n, , , c] = x.shape as [number, number, number, number];
    return ops.reshape(ops.meanSpatial(x), [n, 1, 1, c]);
  }

  mulChannels(x: Tensor, gate: Tensor): Tensor {
    const [n, h, w, c] = x.shape as [number, number, number, number];
    if (n === 1) return ops.mul(x, ops.reshape(gate, [c]));
    // The engine broadcasts trailing dims only: bring the image axis next to the channels ([HW, N, C]), where
    // the [N, C] gate is a suffix. Only the SE block at 1/64 resolution uses this, so the copies are small.
    const spatialFirst = ops.permute(ops.reshape(x, [n, h * w, c]), [1, 0, 2]);
    const gated = ops.mul(spatialFirst, ops.reshape(gate, [n, c]));
    return ops.reshape(ops.permute(gated, [1, 0, 2]), [n, h, w, c]);
  }

  toTokens(x: Tensor): Tensor {
    const [n, h, w, c] = x.shape as [number, number, number, number];
    return ops.reshape(x, [n, h * w, c]);
  }

  fromTokens(x: Tensor, height: number, width: number): Tensor {
    const [n, , c] = x.shape as [number, number, number];
    return ops.reshape(x, [n, height, width, c]);
  }

  linear(x: Tensor, linear: Linear): Tensor {
    const bias = linear.bias ? this.weights.tensor(linear.bias) : undefined;
    return ops.linear(x, this.weights.tensor(linear.weight), bias);
  }

  multiHeadAttention(qkv: Tensor, numHeads: number, headDim: number): Tensor {
    const [n, l] = qkv.shape as [number, number, number];
    const dim = numHeads * headDim;
    // (N, L, 3, heads, hd) → (3, N, heads, L, hd): q, k and v become contiguous thirds with heads folded
    // into the batch, the layout the engine's attention takes.
    const stacked = ops.reshape(
      ops.permute(ops.reshape(qkv, [n, l, 3, numHeads, headDim]), [2, 0, 3, 1, 4]),
      [3, n * numHeads * l * headDim],
    );
    const [q, k, v] = this.selectors.map((s) =>
      ops.reshape(ops.matmul(s, stacked), [n * numHeads, l, headDim]),
    );
    const attended = ops.attention(q, k, v, { scale: headDim ** -0.5 });
    return ops.reshape(ops.permute(ops.reshape(attended, [n, numHeads, l, headDim]), [0, 2, 1, 3]), [
      n,
      l,
      dim,
    ]);
  }
}
