// Greedy decoding of FastVLM on the engine with a KV cache: the prompt (image tokens spliced in) runs once through
// the decoder, storing each layer's RoPE'd keys and values; every new token then runs alone, attending to the cache.
import type { Engine } from '../gpu/engine.ts';
import * as ops from '../gpu/ops/index.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { FastVLMGpu, LmBatch } from './fastvlm-gpu.ts';
import { headDim } from './qwen2.ts';

export interface GenerateOptions {
  /** Prompt ids, −1 at image positions (as the text path lays them out). */
  promptIds: Int32Array;
  imageSlots: LmBatch['imageSlots'];
  /** Images [n, R, R, 3] in [0, 1], one per slot (BatchNorm on running statistics). */
  images?: Tensor;
  maxNewTokens: number;
  /** Generation stops at any of these (not included in the result): `<|im_end|>`, `<|endoftext|>`. */
  stopIds: readonly number[];
  /** Sees each step's logits over the vocabulary (tests compare them with a decode without cache). */
  onLogits?: (step: number, logits: Float32Array) => void;
}

/** Keys and values of every layer for positions [0, length), [capacity, KV, hd] each. */
class KvCache {
  readonly keys: Tensor[];
  readonly values: Tensor[];
  length = 0;

  constructor(
    private readonly eng: Engine,
    layers: number,
    readonly capacity: number,
    readonly kvHeads: number,
    readonly hd: number,
  ) {
    const make = () => eng.keep(eng.zeros([capacity, kvHeads, hd]));
    this.keys = Array.from({ length: layers }, make);
    this.values = Array.from({ length: layers }, make);
  }

  /** Copy rows [T, KV, hd] into positions [at, at + T) of layer `layer`'s cache. */
  write(layer: number, at: number, k: Tensor, v: Tensor): void {
    const row = this.kvHeads * this.hd;
    const T = k.shape[0] as number;
    if (at + T > this.capacity) throw new Error(`KV cache: ${at + T} positions exceed ${this.capacity}`);
    this.eng.copy(k.slice(0, T * row), this.keys[layer]!.slice(at * row, T * row));
    this.eng.copy(v.slice(0, T * row), this.values[layer]!.slice(at * row, T * row));
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose();
  }
}

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if ((a[i] as number) > (a[best] as number)) best = i;
  return best;
}

/** Greedy continuation of the prompt: the new token ids, without the stop token. */
export async function generateGreedy(gpu: FastVLMGpu, o: GenerateOptions): Promise<number[]> {
  const eng = gpu.eng;
  const c = gpu.model.config.lm;
  const hd = headDim(c);
  const scale = hd ** -0.5;
  const P = o.promptIds.length;
  const cache = new KvCache(eng, c.num_hidden_layers, P + o.maxNewTokens, c.num_key_value_heads, hd);
  const out: number[] = [];
  try {
    const first = eng.noGrad(() =>
      eng.tidy(() => {
        const batch: LmBatch = {
          batch: 1,
          seqLen: P,
          tokenIds: o.promptIds,
          labels: new Int32Array(P),
          positionIds: Int32Array.from({ length: P }, (_, i) => i),
          attentionMask: new Uint8Array(P).fill(1),
          imageSlots: o.imageSlots,
        };
        const imageTokens = o.images ? gpu.imageTokens(o.images, 'eval') : undefined;
        const x = gpu.inputEmbeddings(batch, imageTokens);
        const segments = new Int32Array(P);
        const hidden = gpu.runLayers(x, batch.positionIds as Int32Array, (q, k, v, layer) => {
          cache.write(layer, 0, k, v);
          return gpu.lmOps.attention(q, k, v, segments, scale);
        });
        return gpu.logitsAt(hidden, Int32Array.of(P - 1));
      }),
    );
    cache.length = P;
    const firstLogits = await first.read();
    o.onLogits?.(0, firstLogits);
    let next = argmax(firstLogits);
    first.dispose();
    while (out.length < o.maxNewTokens && !o.stopIds.includes(next)) {
      out.push(next);
      if (out.length === o.maxNewTokens) break;
      const at = cache.length;
      const logits = eng.noGrad(() =>
        eng.tidy(() => {
          const x = gpu.lmOps.embed(gpu.embedTable, Int32Array.of(next));
          const hidden = gpu.runLayers(x, Int32Array.of(at), (q, k, v, layer) => {
            cache.write(layer, at, k, v);
            // The new token attends to the cached positions up to and including its own.
            const range = Int32Array.of(0, at + 1);
            return ops.decodeAttention(q, cache.keys[layer]!, cache.values[layer]!, range, { scale });
          });
          return gpu.logitsAt(hidden, Int32Array.of(0));
        }),
      );
      cache.length = at + 1;
      const values = await logits.read();
      o.onLogits?.(out.length, values);
      next = argmax(values);
      logits.dispose();
    }
    return out;
  } finally {
    cache.dispose();
  }
}
