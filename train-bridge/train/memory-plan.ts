// What a training run needs in device memory, from the module trees and shapes alone (no weights allocated):
// parameters, gradients, AdamW moments and the activations one micro-batch keeps for its backward, and whether
// that fits an adapter's limits — with the one change to make when it does not.
import { FastViTHD, modelConfig } from '../model/fastvithd.ts';
import { FastVLM, fastVLMConfig } from '../model/fastvlm.ts';
import { type ShapeOnly, ShapeOps } from '../model/flops.ts';
import { forwardFastViTHD } from '../model/forward.ts';
import { countParameters } from '../model/module.ts';
import { headDim } from '../model/qwen2.ts';
import type { RunConfig } from './presets.ts';

const F32 = 4;
/** Rows of logits the chunked cross-entropy holds at once (logits, probabilities and their gradient). */
const CE_ROWS = 64;

export interface MemoryPlan {
  /** Bytes. */
  parameters: number;
  gradients: number;
  optimizer: number;
  /** Activations one micro-batch keeps for the backward (an upper bound: every op output counted). */
  activations: number;
  total: number;
  /** The largest single buffer and what it is. */
  largest: { what: string; bytes: number };
  /** Tokens per sample the plan assumed (LM objective: the max length). */
  tokensPerSample: number;
}

/** Sum of the sizes of every op output of one image's encoder forward, and the largest one. */
function visionActivations(model: FastViTHD, resolution: number): { total: number; largest: number } {
  const ops = new ShapeOps();
  let total = 0;
  let largest = 0;
  const counting = new Proxy(ops, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const out = v.apply(target, args) as unknown;
        if (out && typeof out === 'object' && 'shape' in out) {
          const n = (out as ShapeOnly).shape.reduce((a, b) => a * b, 1);
          total += n;
          largest = Math.max(largest, n);
        }
        return out;
      };
    },
  });
  forwardFastViTHD(model, { shape: [1, 3, resolution, resolution] }, counting);
  return { total: total * F32, largest: largest * F32 };
}

/**
 * The plan of a run config; an LM run assumes one image and `maxLength` tokens per sample (the worst case), a packed
 * one `capacity` tokens per row and as many images as fit in it (each at least partly).
 */
export function memoryPlan(config: RunConfig): MemoryPlan {
  const n = config.microBatch;
  if (config.objective !== 'lm') {
    const encoder = new FastViTHD(modelConfig(config.model));
    const params = countParameters(encoder) * F32;
    const trainable = config.trainEncoder ? params : 0;
    const v = visionActivations(encoder, config.resolution);
    const activations = config.trainEncoder ? v.total * n : v.largest * n;
    return finish(
      params,
      trainable,
      activations,
      { what: 'encoder activations of the micro-batch', bytes: v.largest * n },
      0,
    );
  }
  const arch = fastVLMConfig(config.model);
  const model = new FastVLM(arch);
  const counts = model.parameterCounts();
  const lm = arch.lm;
  const trainable =
    (config.trainEncoder ? counts.vision : 0) + counts.projector + (config.trainLm ? counts.lm : 0);
  const v = visionActivations(model.vision, config.resolution);
  const pack = config.text?.pack;
  const tokens = pack?.capacity ?? config.text?.maxLength ?? 2048;
  const images = n * (pack ? Math.ceil(pack.capacity / (config.resolution / 64) ** 2) : 1);
  const D = lm.hidden_size;
  const kv = lm.num_key_value_heads * headDim(lm);
  // Per token and layer: norm inputs/outputs, q/k/v before and after RoPE, attention output and its log-sum-exp,
  // o_proj, residuals, gate/up/SiLU·mul, down_proj.
  const perTokenLayer = 10 * D + 3 * kv + lm.num_attention_heads + 3 * lm.intermediate_size;
  const lmActivations = n * tokens * (perTokenLayer * lm.num_hidden_layers + 3 * D) * F32;
  const ceChunk = 3 * CE_ROWS * lm.vocab_size * F32;
  const visionKept = config.trainEncoder ? v.total : v.largest;
  const activations = lmActivations + images * visionKept + ceChunk;
  const embed = lm.vocab_size * D * F32;
  const candidates = [
    { what: 'token embedding (and its gradient and AdamW moments)', bytes: embed },
    { what: `largest encoder activation of ${images} image(s)`, bytes: v.largest * images },
    { what: 'a cross-entropy logits chunk', bytes: CE_ROWS * lm.vocab_size * F32 },
    {
      what: `one decoder MLP activation of ${n}×${tokens} tokens`,
      bytes: n * tokens * lm.intermediate_size * F32,
    },
  ];
  const largest = candidates.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  return finish(counts.total * F32, trainable * F32, activations, largest, tokens);
}

function finish(
  parameters: number,
  trainableBytes: number,
  activations: number,
  largest: { what: string; bytes: number },
  tokensPerSample: number,
): MemoryPlan {
  const gradients = trainableBytes;
  const optimizer = 2 * trainableBytes;
  return {
    parameters,
    gradients,
    optimizer,
    activations,
    total: parameters + gradients + optimizer + activations,
    largest,
    tokensPerSample,
  };
}

export interface DeviceLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  /** Memory the device can give the run in all, when known (a CPU adapter: the host's RAM). */
  totalBytes?: number;
}

export function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/**
 * One line saying why the run does not fit and what to change, or undefined when it fits. The fix offered is the
 * largest micro-batch that divides the batch size and fits, else a lower resolution, else a smaller model.
 */
export function memoryProblem(config: RunConfig, limits: DeviceLimits): string | undefined {
  const fits = (c: RunConfig) => {
    const p = memoryPlan(c);
    return (
      p.largest.bytes <= limits.maxBufferSize &&
      (limits.totalBytes === undefined || p.total <= limits.totalBytes)
    );
  };
  if (fits(config)) return undefined;
  const plan = memoryPlan(config);
  const why =
    plan.largest.bytes > limits.maxBufferSize
      ? `its largest buffer (${plan.largest.what}, ${gib(plan.largest.bytes)}) exceeds the adapter's maxBufferSize ` +
        `(${gib(limits.maxBufferSize)})`
      : `it needs about ${gib(plan.total)} (parameters ${gib(plan.parameters)}, gradients ${gib(plan.gradients)}, ` +
        `AdamW ${gib(plan.optimizer)}, activations ${gib(plan.activations)}) and the device has ${gib(limits.totalBytes!)}`;
  let fix = '';
  for (let m = config.microBatch - 1; m >= 1 && !fix; m--) {
    if (config.batchSize % m === 0 && fits({ ...config, microBatch: m })) fix = `use --micro-batch ${m}`;
  }
  for (let r = config.resolution - 64; r >= 64 && !fix; r -= 64) {
    if (fits({ ...config, microBatch: 1, resolution: r })) fix = `use --micro-batch 1 --resolution ${r}`;
  }
  if (!fix)
    fix = 'use a smaller model (e.g. --model fastvlm-tiny to try the pipeline) or a device with more memory';
  return `${config.model} at ${config.resolution}² with micro-batch ${config.microBatch} does not fit this adapter: ${why}; ${fix}`;
}
