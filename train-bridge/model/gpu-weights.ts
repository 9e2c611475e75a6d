// The engine copies of a model's weights: mirrors a module tree's HostTensors as engine tensors in the
// engine's layouts (HWIO convs, [in, out] linears), keeps BatchNorm state on the GPU and copies back.
import type { Engine } from '../gpu/engine.ts';
import type { BatchNormState } from '../gpu/ops/batch-norm.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { HostTensor } from './host-tensor.ts';
import { BatchNorm2d, Conv2d, Linear } from './layers.ts';
import type { Module } from './module.ts';

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
  return relayout(host.data, host, layout, true);
}

function fromEngineLayout(data: Float32Array, host: HostTensor, layout: Layout): Float32Array {
  return relayout(data, host, layout, false);
}

/** Moves values between PyTorch's layout and the engine's, in the direction `toEngine` says. */
function relayout(src: Float32Array, host: HostTensor, layout: Layout, toEngine: boolean): Float32Array {
  if (layout === 'squeeze') return src;
  const out = new Float32Array(src.length);
  const move = (hostAt: number, engineAt: number) => {
    if (toEngine) out[engineAt] = src[hostAt] as number;
    else out[hostAt] = src[engineAt] as number;
  };
  if (layout === 'linear') {
    const [o, i] = host.shape as [number, number];
    for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) move(r * i + c, c * o + r);
    return out;
  }
  const [o, i, kh, kw] = host.shape as [number, number, number, number];
  for (let a = 0; a < o; a++)
    for (let b = 0; b < i; b++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++) move(((a * i + b) * kh + y) * kw + x, ((y * kw + x) * i + b) * o + a);
  return out;
}
