// FastVLM on the WebGPU engine: images → FastViTHD → projector → image tokens spliced into the token embeddings
// at their slots → Qwen2 decoder → next-token cross-entropy on the labels (mean over non-ignored tokens, as HF).
import type { Engine } from '../gpu/engine.ts';
import * as ops from '../gpu/ops/index.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { FastVLM } from './fastvlm.ts';
import { VISION_TOWER_PREFIX } from './fastvlm.ts';
import { forwardFastViTHD, forwardProjector } from './forward.ts';
import { GpuBackend, type GpuBatchNormMode } from './gpu-backend.ts';
import { GpuWeights } from './gpu-weights.ts';
import type { Linear } from './layers.ts';
import { IGNORE_INDEX, LmOps } from './lm-ops.ts';
import { headDim, type Qwen2DecoderLayer } from './qwen2.ts';

/** One micro-batch of token sequences (right-padded to seqLen) and where each image's tokens go. */
export interface LmBatch {
  batch: number;
  seqLen: number;
  /** B·L ids; −1 at image token slots. */
  tokenIds: ArrayLike<number>;
  /** B·L labels aligned with tokenIds (IGNORE_INDEX where no loss); the loss predicts labels[p+1] from p. */
  labels: ArrayLike<number>;
  /** B·L rotary positions. */
  positionIds: ArrayLike<number>;
  /** B·L: 1 real token, 0 padding. */
  attentionMask: ArrayLike<number>;
  /**
   * B·L: the sample each position belongs to, −1 on padding (packed rows hold several). Absent: one sample per row.
   * Attention and the next-token shift never cross from one segment into another.
   */
  segmentIds?: ArrayLike<number>;
  /** In the order the images are stacked in the image tensor. */
  imageSlots: ReadonlyArray<{ sample: number; start: number; count: number }>;
}

/** Which parts get gradients: Stage 1 trains the projector only (gradients still flow through the LM to it). */
export interface TrainableParts {
  vision: boolean;
  projector: boolean;
  lm: boolean;
}

export const ALL_PARTS: TrainableParts = { vision: true, projector: true, lm: true };

export class FastVLMGpu {
  readonly weights: GpuWeights;
  readonly lmOps: LmOps;
  private readonly visionTrain: GpuBackend;
  private readonly visionEval: GpuBackend;
  private readonly visionBatchStats: GpuBackend;

  constructor(
    readonly eng: Engine,
    readonly model: FastVLM,
    readonly parts: TrainableParts = ALL_PARTS,
  ) {
    this.weights = new GpuWeights(eng);
    const m = model.model;
    this.weights.add(model.vision, { prefix: VISION_TOWER_PREFIX, trainable: parts.vision });
    this.weights.add(model.projector, { prefix: 'model.mm_projector.', trainable: parts.projector });
    this.weights.add(m.embedTokens, { prefix: 'model.embed_tokens.', trainable: parts.lm });
    this.weights.add(m.layers, { prefix: 'model.layers.', trainable: parts.lm });
    this.weights.add(m.norm, { prefix: 'model.norm.', trainable: parts.lm });
    if (model.lmHead) this.weights.add(model.lmHead, { prefix: 'lm_head.', trainable: parts.lm });
    this.lmOps = new LmOps(eng);
    this.visionTrain = new GpuBackend(this.weights, 'train');
    this.visionEval = new GpuBackend(this.weights, 'eval');
    this.visionBatchStats = new GpuBackend(this.weights, 'batch');
  }

  /**
   * Image tokens [nImages, tokens, hidden] of images [N, R, R, 3] in [0, 1]. A trained encoder runs BatchNorm
   * on batch statistics ('train'); a frozen one on running statistics, with nothing recorded.
   */
  imageTokens(images: Tensor, bn?: GpuBatchNormMode): Tensor {
    const mode = bn ?? (this.parts.vision ? 'train' : 'eval');
    const vops = { eval: this.visionEval, train: this.visionTrain, batch: this.visionBatchStats }[mode];
    const run = () => forwardFastViTHD(this.model.vision, images, vops);
    const features = this.parts.vision && this.eng.gradEnabled ? run() : this.eng.noGrad(run);
    return forwardProjector(this.model.projector, features, vops);
  }

  /** Input embeddings [B·L, D]: token rows, and image token rows at their slots (a gather each, so both have gradients). */
  inputEmbeddings(batch: LmBatch, imageTokens: Tensor | undefined): Tensor {
    const T = batch.batch * batch.seqLen;
    const D = this.model.config.lm.hidden_size;
    const ids = Int32Array.from({ length: T }, (_, i) => batch.tokenIds[i] as number);
    const text = this.lmOps.embed(this.weights.tensor(this.model.model.embedTokens.weight), ids);
    if (batch.imageSlots.length === 0) return text;
    if (!imageTokens)
      throw new Error('inputEmbeddings: the batch has image slots but no image tokens were given');
    const [n, perImage] = imageTokens.shape as [number, number, number];
    if (n !== batch.imageSlots.length) {
      throw new Error(`inputEmbeddings: ${n} images for ${batch.imageSlots.length} image slots`);
    }
    const source = new Int32Array(T).fill(-1);
    batch.imageSlots.forEach((slot, i) => {
      // A slot cut by the max length holds the image's first `count` tokens.
      if (slot.count > perImage) {
        throw new Error(
          `image slot ${i} holds ${slot.count} tokens; the encoder gives ${perImage} per image`,
        );
      }
      for (let j = 0; j < slot.count; j++) {
        const at = slot.sample * batch.seqLen + slot.start + j;
        if (ids[at] !== -1)
          throw new Error(`image slot ${i} covers token ${at}, which is not an image position`);
        source[at] = i * perImage + j;
      }
    });
    const spliced = this.lmOps.embed(ops.reshape(imageTokens, [n * perImage, D]), source);
    return ops.add(text, spliced);
  }

  /** The final hidden states [B·L, D] (after the last RMSNorm). */
  decode(x: Tensor, batch: LmBatch): Tensor {
    const c = this.model.config.lm;
    const T = batch.batch * batch.seqLen;
    const segments = segmentsOf(batch);
    const positions = Int32Array.from({ length: T }, (_, i) => batch.positionIds[i] as number);
    const scale = headDim(c) ** -0.5;
    return this.runLayers(x, positions, (q, k, v) => this.lmOps.attention(q, k, v, segments, scale));
  }

  /**
   * Every decoder layer over hidden states x [T, D] at `positions`, then the final RMSNorm. `attend` gets each
   * layer's q [T, H, hd] and k, v [T, KV, hd] (RoPE applied) and returns [T, H, hd]: causal attention in training,
   * attention over a KV cache when generating.
   */
  runLayers(
    x: Tensor,
    positions: Int32Array,
    attend: (q: Tensor, k: Tensor, v: Tensor, layer: number) => Tensor,
  ): Tensor {
    const c = this.model.config.lm;
    const rope = this.lmOps.ropeTable(positions, headDim(c), c.rope_theta);
    let h = x;
    for (const [i, layer] of this.model.model.layers.items.entries())
      h = this.layer(layer, h, rope, (q, k, v) => attend(q, k, v, i));
    return this.lmOps.rmsNorm(h, this.weights.tensor(this.model.model.norm.weight), c.rms_norm_eps);
  }

  private linear(x: Tensor, l: Linear): Tensor {
    return ops.linear(x, this.weights.tensor(l.weight), l.bias ? this.weights.tensor(l.bias) : undefined);
  }

  private layer(
    layer: Qwen2DecoderLayer,
    h: Tensor,
    rope: ops.RopeTable,
    attend: (q: Tensor, k: Tensor, v: Tensor) => Tensor,
  ): Tensor {
    const c = this.model.config.lm;
    const T = h.shape[0] as number;
    const H = c.num_attention_heads;
    const KV = c.num_key_value_heads;
    const hd = headDim(c);
    const a = layer.selfAttn;
    const n1 = this.lmOps.rmsNorm(h, this.weights.tensor(layer.inputLayernorm.weight), c.rms_norm_eps);
    const q = this.lmOps.rope(ops.reshape(this.linear(n1, a.qProj), [T, H, hd]), rope);
    const k = this.lmOps.rope(ops.reshape(this.linear(n1, a.kProj), [T, KV, hd]), rope);
    const v = ops.reshape(this.linear(n1, a.vProj), [T, KV, hd]);
    const attended = attend(q, k, v);
    const h1 = ops.add(h, this.linear(ops.reshape(attended, [T, H * hd]), a.oProj));
    const n2 = this.lmOps.rmsNorm(
      h1,
      this.weights.tensor(layer.postAttentionLayernorm.weight),
      c.rms_norm_eps,
    );
    const m = layer.mlp;
    const act = this.lmOps.siluMul(this.linear(n2, m.gateProj), this.linear(n2, m.upProj));
    return ops.add(h1, this.linear(act, m.downProj));
  }

  /** The LM head's weight and whether it is stored [D, V] (an untied Linear) rather than [V, D] (the embedding). */
  private head(): { weight: Tensor; transposed: boolean } {
    const lmHead = this.model.lmHead;
    return lmHead
      ? { weight: this.weights.tensor(lmHead.weight), transposed: true }
      : { weight: this.weights.tensor(this.model.model.embedTokens.weight), transposed: false };
  }

  /** Scalar mean next-token cross-entropy of a micro-batch (images stacked in imageSlots order). */
  loss(batch: LmBatch, images?: Tensor): Tensor {
    const imageTokens = images ? this.imageTokens(images) : undefined;
    const hidden = this.decode(this.inputEmbeddings(batch, imageTokens), batch);
    const { weight, transposed } = this.head();
    return this.lmOps.crossEntropy(hidden, weight, shiftedTargets(batch), transposed);
  }

  /** The token embedding table [V, D]. */
  get embedTable(): Tensor {
    return this.weights.tensor(this.model.model.embedTokens.weight);
  }

  /** Logits [rows.length, V] of the given token rows of the final hidden states (decoding). */
  logitsAt(hidden: Tensor, rows: Int32Array): Tensor {
    const { weight, transposed } = this.head();
    return ops.matmul(this.lmOps.embed(hidden, rows), weight, { transB: !transposed });
  }

  dispose(): void {
    this.visionTrain.dispose();
    this.visionEval.dispose();
    this.visionBatchStats.dispose();
  }
}

/** Each position's segment: the batch's own, else each row one sample; padding (mask 0) is −1 and attends to nothing. */
export function segmentsOf(batch: LmBatch): Int32Array {
  const T = batch.batch * batch.seqLen;
  if (batch.segmentIds) {
    if (batch.segmentIds.length !== T)
      throw new RangeError(`segmentIds has ${batch.segmentIds.length} entries for ${T} positions`);
    return Int32Array.from(batch.segmentIds);
  }
  return Int32Array.from({ length: T }, (_, i) =>
    batch.attentionMask[i] ? Math.floor(i / batch.seqLen) : -1,
  );
}

/**
 * targets[b, p] = labels[b, p + 1] (HF's shift), IGNORE_INDEX at each row's last position and wherever p + 1 starts
 * another segment: in a packed row, no loss predicts the next sample's first token from this one.
 */
export function shiftedTargets(batch: LmBatch): Int32Array {
  const { batch: B, seqLen: L } = batch;
  const segments = segmentsOf(batch);
  const out = new Int32Array(B * L).fill(IGNORE_INDEX);
  for (let b = 0; b < B; b++)
    for (let p = 0; p + 1 < L; p++) {
      const i = b * L + p;
      if (segments[i] === segments[i + 1]) out[i] = batch.labels[i + 1] as number;
    }
  return out;
}
