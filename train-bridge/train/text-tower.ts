// The alignment objective's small text tower: a hashed word tokenizer (no vocabulary file) feeding a mean
// embedding bag and one linear layer into the joint embedding space.
import { keyedHash64 } from '../../core/keyed-hash.ts';
import * as ops from '../gpu/ops/index.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { GpuWeights } from '../model/gpu-weights.ts';
import { HostTensor } from '../model/host-tensor.ts';
import { defaultInit, fillTruncNormal, TensorRandom } from '../model/init.ts';
import { Linear } from '../model/layers.ts';
import { Module } from '../model/module.ts';

export interface TextTowerConfig {
  /** Hash buckets of the tokenizer (rows of the embedding table). */
  buckets: number;
  /** Width of the embedding bag. */
  embedDim: number;
  /** Tokens kept per caption (the bag size; shorter captions are padded). */
  maxTokens: number;
}

/** Lower-cased runs of letters and digits (any script); the text between them is dropped. */
export function captionWords(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/**
 * Token ids of a caption: each word and each adjacent word pair (so word order counts a little) hashed into
 * `buckets` with a fixed key; the first `maxTokens` ids, −1 padded. Pure: the same text gives the same ids.
 */
export function tokenizeCaption(text: string, config: TextTowerConfig): Int32Array {
  const words = captionWords(text);
  const ids = new Int32Array(config.maxTokens).fill(-1);
  let n = 0;
  const bucket = (s: string) => Number(keyedHash64(0, 'text-token', s) % BigInt(config.buckets));
  for (let i = 0; i < words.length && n < config.maxTokens; i++) {
    ids[n++] = bucket(words[i]);
    if (i + 1 < words.length && n < config.maxTokens) ids[n++] = bucket(`${words[i]} ${words[i + 1]}`);
  }
  return ids;
}

export class TextTower extends Module {
  readonly kind = 'TextTower';
  readonly embedding: HostTensor;
  readonly proj: Linear;

  constructor(
    readonly config: TextTowerConfig,
    readonly outDim: number,
  ) {
    super();
    this.embedding = this.registerParameter('embedding', new HostTensor([config.buckets, config.embedDim]));
    this.proj = this.registerModule('proj', new Linear(config.embedDim, outDim, true));
  }

  /** Keyed initialisation: embedding rows N(0, 1) truncated at ±2 (nn.Embedding's scale), linear as PyTorch's default. */
  init(seed: number | bigint | string, prefix = 'text_tower'): void {
    fillTruncNormal(this.embedding, new TensorRandom(seed, 'text-init', `${prefix}.embedding`), 1);
    defaultInit(this.proj.weight, this.proj.bias, this.config.embedDim, `${prefix}.proj`, seed, 'text-init');
  }

  /** Caption embeddings [B, outDim] on the engine; `ids` holds B·maxTokens token ids. */
  forward(weights: GpuWeights, ids: Int32Array): Tensor {
    const bag = ops.embeddingBag(weights.tensor(this.embedding), ids, this.config.maxTokens);
    const bias = this.proj.bias ? weights.tensor(this.proj.bias) : undefined;
    return ops.linear(bag, weights.tensor(this.proj.weight), bias);
  }
}
