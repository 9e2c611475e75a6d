// The training loop: AdamW on the engine, cosine schedule with warmup, gradient accumulation of micro-batches up
// to the preset batch, gradient clipping, periodic checkpoints, and a resume that continues bit-exactly.

import { join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import * as ops from '../gpu/ops/index.ts';
import { AdamW } from '../gpu/optim/adamw.ts';
import { clipGradNorm } from '../gpu/optim/clip-grad-norm.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { StreamingDataset, type StreamingDatasetOptions } from '../loader/dataset.ts';
import type { LoaderState } from '../loader/state.ts';
import { FastViTHD, modelConfig } from '../model/fastvithd.ts';
import { initFastViTHD } from '../model/init.ts';
import { loadFastViTHD, locateFastViTHD } from '../model/state-dict.ts';
import { readSafetensorsHeader } from '../safetensors.ts';
import {
  contrastiveModelWriter,
  loadCheckpointWeights,
  loadOptimizerState,
  readTrainerState,
  saveCheckpoint,
  type TrainerState,
} from './checkpoint.ts';
import type { MetricsLog, StepMetrics } from './metrics.ts';
import { AlignmentHeads, AlignmentModel, retrievalAccuracy } from './objective.ts';
import { type PairBatch, PairStream } from './pairs.ts';
import { contrastiveHeads, extendRun, type RunConfig } from './presets.ts';
import { cosineWithWarmup } from './schedule.ts';

export interface TrainerOptions {
  manifest: string;
  /** The run's config; ignored when resuming (the checkpoint's config holds). */
  config?: RunConfig;
  /** A checkpoint folder to continue from. */
  resumeFrom?: string;
  /** When resuming: a longer run length; the schedule is recomputed over it (see extendRun). */
  extendTo?: number;
  /** Encoder weights to start from (e.g. published FastViTHD safetensors, either form) instead of a keyed init. */
  encoderWeights?: string;
  loader?: Omit<StreamingDatasetOptions, 'epoch'>;
}

export class Trainer {
  /** Optimiser updates done. */
  step: number;
  private readonly params: Tensor[];
  private readonly paramNames: string[];
  private prefetched: Promise<PairBatch> | undefined;
  private consumedState: LoaderState;
  private skipped: number;

  private constructor(
    readonly eng: Engine,
    readonly config: RunConfig,
    readonly model: AlignmentModel,
    readonly optimizer: AdamW,
    private readonly pairs: PairStream,
    resumed: TrainerState | undefined,
    initialLoaderState: LoaderState,
  ) {
    this.step = resumed?.step ?? 0;
    this.skipped = resumed?.skipped ?? 0;
    const trainable = model.weights.trainable();
    this.params = trainable.map((p) => p.tensor);
    this.paramNames = trainable.map((p) => p.name);
    this.consumedState = initialLoaderState;
  }

  static async create(eng: Engine, o: TrainerOptions): Promise<Trainer> {
    const resumed = o.resumeFrom ? await readTrainerState(o.resumeFrom) : undefined;
    const config = resumed ? extendRun(resumed.config, resumed.step, o.extendTo) : o.config;
    if (!config) throw new Error('Trainer.create: a run config or a checkpoint to resume is needed');
    const arch = modelConfig(config.model);
    let encoder: FastViTHD;
    if (o.resumeFrom) {
      const header = await readSafetensorsHeader(join(o.resumeFrom, 'encoder.safetensors'));
      encoder = new FastViTHD(arch, { inferenceMode: locateFastViTHD(header.tensors.keys())?.inferenceMode });
    } else if (o.encoderWeights) {
      encoder = await loadFastViTHD(o.encoderWeights, arch);
    } else {
      encoder = new FastViTHD(arch);
      initFastViTHD(encoder, config.seed);
    }
    const heads = new AlignmentHeads(encoder.outChannels, contrastiveHeads(config));
    if (o.resumeFrom) await loadCheckpointWeights(o.resumeFrom, encoder, heads);
    else heads.init(config.seed);
    const model = new AlignmentModel(eng, encoder, heads, config.trainEncoder);
    const trainable = model.weights.trainable();
    const optimizer = new AdamW(
      trainable.map((p) => p.tensor),
      { lr: config.lr, weightDecay: config.weightDecay },
    );
    if (o.resumeFrom)
      await loadOptimizerState(
        o.resumeFrom,
        optimizer,
        trainable.map((p) => p.name),
      );
    const dataset = new StreamingDataset(o.manifest, o.loader ?? {});
    await dataset.open();
    const pairs = new PairStream(
      dataset,
      { resolution: config.resolution, text: contrastiveHeads(config).text },
      resumed?.loader,
    );
    return new Trainer(eng, config, model, optimizer, pairs, resumed, resumed?.loader ?? dataset.state());
  }

  /** The learning rate of the next update. */
  get lr(): number {
    return cosineWithWarmup(this.step, this.config.steps, this.config.lr, this.config.warmupRatio);
  }

  private nextBatch(): Promise<PairBatch> {
    const batch = this.prefetched ?? this.pairs.next(this.config.microBatch);
    // Decode the next micro-batch while the GPU works on this one.
    this.prefetched = batch.then(() => this.pairs.next(this.config.microBatch));
    // An unused prefetch that fails surfaces when it is awaited; keep it from being reported as unhandled.
    this.prefetched.catch(() => {});
    return batch;
  }

  /** One optimiser update over batchSize images (batchSize / microBatch accumulated passes). */
  async trainStep(): Promise<StepMetrics> {
    const { config, eng } = this;
    const started = performance.now();
    const passes = config.batchSize / config.microBatch;
    const r = config.resolution;
    const losses: Tensor[] = [];
    let last: PairBatch | undefined;
    for (let i = 0; i < passes; i++) {
      const batch = await this.nextBatch();
      const images = eng.uploadU8(batch.pixels, [config.microBatch, r, r, 3], { scale: 1 / 255 });
      // Each pass's SigLIP loss uses its own micro-batch as negatives; scaling by 1/passes averages the passes.
      const loss = eng.tidy(() => ops.scale(this.model.loss(images, batch.ids), 1 / passes));
      eng.backward(loss);
      images.dispose();
      losses.push(loss);
      last = batch;
    }
    const lr = this.lr;
    const norm = clipGradNorm(this.params, config.maxGradNorm);
    this.optimizer.setLr(lr);
    this.optimizer.step();
    eng.zeroGrad(this.params);
    let loss = 0;
    for (const l of losses) {
      loss += (await l.read())[0];
      l.dispose();
    }
    const gradNorm = (await norm.read())[0];
    norm.dispose();
    this.step++;
    this.consumedState = last!.loaderState;
    this.skipped = last!.skipped;
    const seconds = (performance.now() - started) / 1000;
    return {
      step: this.step,
      epoch: last!.loaderState.epoch,
      loss,
      lr,
      gradNorm,
      images: config.batchSize,
      imagesPerSec: config.batchSize / seconds,
      seconds,
    };
  }

  /** Train until `until` updates are done (default: the run's length), checkpointing every `saveEvery` and at the end. */
  async run(
    o: {
      until?: number;
      checkpointDir?: string;
      saveEvery?: number;
      metrics?: MetricsLog;
      onStep?: (m: StepMetrics) => void;
      /** Stop after the update in progress when aborted (Ctrl-C); the final checkpoint is still written. */
      signal?: AbortSignal;
    } = {},
  ): Promise<void> {
    const until = Math.min(o.until ?? this.config.steps, this.config.steps);
    while (this.step < until && !o.signal?.aborted) {
      const m = await this.trainStep();
      await o.metrics?.append(m);
      o.onStep?.(m);
      if (o.checkpointDir && o.saveEvery && this.step % o.saveEvery === 0 && this.step < until) {
        await this.checkpoint(o.checkpointDir);
      }
    }
    if (o.checkpointDir) await this.checkpoint(o.checkpointDir);
  }

  /** Save model, optimiser, schedule position and loader state under `dir` (see checkpoint.ts). */
  async checkpoint(dir: string): Promise<string> {
    await this.model.weights.download();
    return saveCheckpoint(dir, {
      step: this.step,
      config: this.config,
      loader: this.consumedState,
      skipped: this.skipped,
      writeModel: contrastiveModelWriter(this.model.encoder, this.model.heads),
      optimizer: await this.optimizer.stateDict(),
      paramNames: this.paramNames,
    });
  }

  /** Image→text retrieval accuracy among the pairs of `batch` (see AlignmentModel.embed for the BN mode). */
  async retrievalAccuracy(batch: PairBatch, batchNorm: 'eval' | 'batch' = 'eval'): Promise<number> {
    const n = batch.sampleIds.length;
    const r = this.config.resolution;
    const images = this.eng.uploadU8(batch.pixels, [n, r, r, 3], { scale: 1 / 255 });
    const { image, text } = this.eng.tidy(() => this.model.embed(images, batch.ids, batchNorm));
    images.dispose();
    const acc = retrievalAccuracy(await image.read(), await text.read(), n);
    image.dispose();
    text.dispose();
    return acc;
  }

  /** Parameters (host copies, reference names) after downloading them from the engine. */
  async hostParameters(): Promise<Map<string, Float32Array>> {
    await this.model.weights.download();
    const out = new Map<string, Float32Array>();
    for (const [n, t] of this.model.encoder.namedParameters()) out.set(n, t.data.slice());
    for (const [n, t] of this.model.heads.namedParameters()) out.set(n, t.data.slice());
    return out;
  }

  /** Free the model's GPU memory and stop the preprocessing workers. */
  dispose(): void {
    this.model.dispose();
    void this.pairs.close();
  }
}
