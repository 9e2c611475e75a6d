// The training objective (no LLM in the loop): image–text alignment. FastViTHD → FastVLM projector → mean over
// tokens = image embedding; hashed-word text tower = caption embedding; SigLIP sigmoid loss with learnable t and b.
import type { Engine } from '../gpu/engine.ts';
import * as ops from '../gpu/ops/index.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { FastViTHD } from '../model/fastvithd.ts';
import { forwardFastViTHD, forwardProjector } from '../model/forward.ts';
import { GpuBackend } from '../model/gpu-backend.ts';
import { GpuWeights } from '../model/gpu-weights.ts';
import { HostTensor } from '../model/host-tensor.ts';
import { Module } from '../model/module.ts';
import { FastVLMProjector, initProjector } from '../model/projector.ts';
import { TextTower, type TextTowerConfig } from './text-tower.ts';

export interface HeadsConfig {
  /** Width of the projector (FastVLM's LLM width) = the joint embedding width. */
  projectorDim: number;
  text: TextTowerConfig;
}

/** SigLIP's initialisation: t = exp(log 10), b = −10 (the loss starts dominated by the many negatives). */
const LOGIT_SCALE_INIT = Math.log(10);
const LOGIT_BIAS_INIT = -10;

/** Everything trained besides the encoder: projector (LLaVA names `mm_projector.*`), text tower, t and b. */
export class AlignmentHeads extends Module {
  readonly kind = 'AlignmentHeads';
  readonly projector: FastVLMProjector;
  readonly textTower: TextTower;
  readonly logitScale: HostTensor;
  readonly logitBias: HostTensor;

  constructor(
    visionDim: number,
    readonly config: HeadsConfig,
  ) {
    super();
    this.projector = this.registerModule(
      'mm_projector',
      new FastVLMProjector(visionDim, config.projectorDim),
    );
    this.textTower = this.registerModule('text_tower', new TextTower(config.text, config.projectorDim));
    this.logitScale = this.registerParameter(
      'logit_scale',
      new HostTensor([1], Float32Array.of(LOGIT_SCALE_INIT)),
    );
    this.logitBias = this.registerParameter(
      'logit_bias',
      new HostTensor([1], Float32Array.of(LOGIT_BIAS_INIT)),
    );
  }

  init(seed: number | bigint | string): void {
    initProjector(this.projector, seed);
    this.textTower.init(seed);
    this.logitScale.data = Float32Array.of(LOGIT_SCALE_INIT);
    this.logitBias.data = Float32Array.of(LOGIT_BIAS_INIT);
  }
}

/** The encoder and heads on the engine, with the forward passes of training and evaluation. */
export class AlignmentModel {
  readonly weights: GpuWeights;
  private readonly trainOps: GpuBackend;
  private readonly evalOps: GpuBackend;
  private readonly batchStatOps: GpuBackend;
  /** LayerNorm weight 1/√d: a centred, unit-norm embedding (see normalise). */
  private readonly unitGamma: Tensor;
  private readonly zeroBeta: Tensor;

  constructor(
    readonly eng: Engine,
    readonly encoder: FastViTHD,
    readonly heads: AlignmentHeads,
    /** Train the encoder (Stage 1.5/2) or keep it frozen with BatchNorm in eval mode (Stage 1). */
    readonly trainEncoder: boolean,
  ) {
    this.weights = new GpuWeights(eng);
    this.weights.add(encoder, { trainable: trainEncoder });
    this.weights.add(heads, { trainable: true });
    this.trainOps = new GpuBackend(this.weights, 'train');
    this.evalOps = new GpuBackend(this.weights, 'eval');
    this.batchStatOps = new GpuBackend(this.weights, 'batch');
    const d = heads.config.projectorDim;
    this.unitGamma = eng.keep(eng.fill([d], 1 / Math.sqrt(d)));
    this.zeroBeta = eng.keep(eng.zeros([d]));
  }

  /** The scalar SigLIP loss of a batch: images [N, R, R, 3] in [0, 1], token ids N·maxTokens. */
  loss(images: Tensor, ids: Int32Array): Tensor {
    const features = this.trainEncoder
      ? forwardFastViTHD(this.encoder, images, this.trainOps)
      : this.eng.noGrad(() => forwardFastViTHD(this.encoder, images, this.evalOps));
    const img = this.imageEmbedding(features, this.trainOps);
    const txt = this.normalise(this.heads.textTower.forward(this.weights, ids));
    const t = ops.exp(this.weights.tensor(this.heads.logitScale));
    return ops.sigmoidContrastiveLoss(img, txt, t, this.weights.tensor(this.heads.logitBias));
  }

  /**
   * Unit-norm image and caption embeddings [N, d], nothing recorded. BatchNorm uses running statistics
   * ('eval') or the batch's own without touching the running ones ('batch': the model as training sees it).
   */
  embed(
    images: Tensor,
    ids: Int32Array,
    batchNorm: 'eval' | 'batch' = 'eval',
  ): { image: Tensor; text: Tensor } {
    const encoderOps = batchNorm === 'eval' ? this.evalOps : this.batchStatOps;
    return this.eng.noGrad(() => ({
      image: this.imageEmbedding(forwardFastViTHD(this.encoder, images, encoderOps), encoderOps),
      text: this.normalise(this.heads.textTower.forward(this.weights, ids)),
    }));
  }

  private imageEmbedding(features: Tensor, gpuOps: GpuBackend): Tensor {
    const tokens = forwardProjector(this.heads.projector, features, gpuOps);
    const [n, l, d] = tokens.shape as [number, number, number];
    return this.normalise(ops.reshape(ops.meanSpatial(ops.reshape(tokens, [n, l, 1, d])), [n, d]));
  }

  /**
   * x ↦ (x − mean(x)) / ‖x − mean(x)‖ per row: a LayerNorm with fixed weight 1/√d. SigLIP L2-normalises;
   * centring first removes one of d directions and lets the engine's tested LayerNorm (and its gradient) do it.
   */
  private normalise(x: Tensor): Tensor {
    return ops.layerNormChannel(x, this.unitGamma, this.zeroBeta, 1e-12);
  }

  dispose(): void {
    this.trainOps.dispose();
    this.evalOps.dispose();
    this.batchStatOps.dispose();
    this.unitGamma.dispose();
    this.zeroBeta.dispose();
  }
}

/** Image→text retrieval accuracy: the share of images whose most similar caption (of the same batch) is their own. */
export function retrievalAccuracy(image: Float32Array, text: Float32Array, n: number): number {
  const d = image.length / n;
  let hits = 0;
  for (let i = 0; i < n; i++) {
    let best = -1;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += image[i * d + k] * text[j * d + k];
      if (s > bestScore) {
        bestScore = s;
        best = j;
      }
    }
    if (best === i) hits++;
  }
  return hits / n;
}
