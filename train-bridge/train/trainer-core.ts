// The training loop both objectives share: AdamW on the engine, cosine schedule with warmup, accumulation of
// micro-batches up to the preset batch, clipping, periodic checkpoints, and a resume that continues bit-exactly.
import type { Engine } from '../gpu/engine.ts';
import { AdamW } from '../gpu/optim/adamw.ts';
import { clipGradNorm } from '../gpu/optim/clip-grad-norm.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { StreamingDataset, type StreamingDatasetOptions } from '../loader/dataset.ts';
import type { GpuWeights } from '../model/gpu-weights.ts';
import {
  type CheckpointContents,
  loaderStateEpoch,
  loadOptimizerState,
  readTrainerState,
  saveCheckpoint,
  type TrainerState,
  type TrainLoaderState,
} from './checkpoint.ts';
import type { MetricsLog, StepMetrics } from './metrics.ts';
import { extendRun, type RunConfig } from './presets.ts';
import { cosineWithWarmup } from './schedule.ts';

/** What the loop needs of a batch: where a run that consumed it resumes, and the samples skipped up to then. */
export interface ConsumedBatch {
  loaderState: TrainLoaderState;
  skipped: number;
}

/** A training stream (see sample-stream.ts). */
export interface BatchSource<B> {
  next(n: number): Promise<B>;
  close(): Promise<void>;
}

/** A model on the engine whose trainable weights the optimiser updates. */
export interface TrainableModel {
  readonly weights: GpuWeights;
  dispose(): void;
}

/** One accumulated pass: its loss (already divided by the number of passes, backward done) and what it covered. */
export interface PassResult {
  loss: Tensor;
  images: number;
  /** Real (unpadded) tokens, for objectives that count them. */
  tokens?: number;
  /** Packed runs: the token positions the pass's rows offered (rows × pack capacity). */
  capacity?: number;
}

export interface RunOptions {
  until?: number;
  checkpointDir?: string;
  saveEvery?: number;
  metrics?: MetricsLog;
  onStep?: (m: StepMetrics) => void;
  /** Stop after the update in progress when aborted (Ctrl-C); the final checkpoint is still written. */
  signal?: AbortSignal;
}

export interface RunSource {
  /** The run's config; ignored when resuming (the checkpoint's config holds). */
  config?: RunConfig;
  /** A checkpoint folder to continue from. */
  resumeFrom?: string;
  /** When resuming: a longer run length; the schedule is recomputed over it (see extendRun). */
  extendTo?: number;
}

/** The run to train: the checkpoint's (maybe lengthened) when resuming, else the given config. */
export async function resolveRun(
  o: RunSource,
  who: string,
): Promise<{ resumed: TrainerState | undefined; config: RunConfig }> {
  const resumed = o.resumeFrom ? await readTrainerState(o.resumeFrom) : undefined;
  const config = resumed ? extendRun(resumed.config, resumed.step, o.extendTo) : o.config;
  if (!config) throw new Error(`${who}.create: a run config or a checkpoint to resume is needed`);
  return { resumed, config };
}

/** AdamW over the model's trainable parameters, its moments restored from the checkpoint when resuming. */
export async function createOptimizer(
  weights: GpuWeights,
  config: RunConfig,
  resumeFrom: string | undefined,
): Promise<AdamW> {
  const trainable = weights.trainable();
  const optimizer = new AdamW(
    trainable.map((p) => p.tensor),
    { lr: config.lr, weightDecay: config.weightDecay },
  );
  if (resumeFrom)
    await loadOptimizerState(
      resumeFrom,
      optimizer,
      trainable.map((p) => p.name),
    );
  return optimizer;
}

/** The training manifest's loader, opened. */
export async function openDataset(
  manifest: string,
  loader: Omit<StreamingDatasetOptions, 'epoch'> | undefined,
): Promise<StreamingDataset> {
  const dataset = new StreamingDataset(manifest, loader ?? {});
  await dataset.open();
  return dataset;
}

/** The loop; an objective supplies one accumulated pass and the writer of its checkpoint's model files. */
export abstract class TrainerCore<M extends TrainableModel, B extends ConsumedBatch> {
  /** Optimiser updates done. */
  step: number;
  private readonly params: Tensor[];
  private readonly paramNames: string[];
  private prefetched: Promise<B> | undefined;
  private consumedState: TrainLoaderState;
  private skipped: number;

  protected constructor(
    readonly eng: Engine,
    readonly config: RunConfig,
    readonly model: M,
    readonly optimizer: AdamW,
    private readonly batches: BatchSource<B>,
    resumed: TrainerState | undefined,
    initialLoaderState: TrainLoaderState,
  ) {
    this.step = resumed?.step ?? 0;
    this.skipped = resumed?.skipped ?? 0;
    const trainable = model.weights.trainable();
    this.params = trainable.map((p) => p.tensor);
    this.paramNames = trainable.map((p) => p.name);
    this.consumedState = initialLoaderState;
  }

  /** Forward and backward of one micro-batch, its loss scaled by 1/passes. */
  protected abstract pass(batch: B, passes: number): PassResult;

  /** Writes the model's files into a checkpoint folder (called after the weights were downloaded). */
  protected abstract modelWriter(): CheckpointContents['writeModel'];

  /** The learning rate of the next update. */
  get lr(): number {
    return cosineWithWarmup(this.step, this.config.steps, this.config.lr, this.config.warmupRatio);
  }

  private nextBatch(): Promise<B> {
    const batch = this.prefetched ?? this.batches.next(this.config.microBatch);
    // Decode the next micro-batch while the GPU works on this one.
    this.prefetched = batch.then(() => this.batches.next(this.config.microBatch));
    // An unused prefetch that fails surfaces when it is awaited; keep it from being reported as unhandled.
    this.prefetched.catch(() => {});
    return batch;
  }

  /** One optimiser update over batchSize samples (batchSize / microBatch accumulated passes). */
  async trainStep(): Promise<StepMetrics> {
    const { config, eng } = this;
    const started = performance.now();
    const passes = config.batchSize / config.microBatch;
    const losses: Tensor[] = [];
    let last: B | undefined;
    let images = 0;
    let tokens: number | undefined;
    let capacity: number | undefined;
    for (let i = 0; i < passes; i++) {
      const batch = await this.nextBatch();
      const p = this.pass(batch, passes);
      losses.push(p.loss);
      last = batch;
      images += p.images;
      if (p.tokens !== undefined) tokens = (tokens ?? 0) + p.tokens;
      if (p.capacity !== undefined) capacity = (capacity ?? 0) + p.capacity;
    }
    const lr = this.lr;
    const norm = clipGradNorm(this.params, config.maxGradNorm);
    this.optimizer.setLr(lr);
    this.optimizer.step();
    eng.zeroGrad(this.params);
    let loss = 0;
    for (const l of losses) {
      loss += (await l.read())[0] as number;
      l.dispose();
    }
    const gradNorm = (await norm.read())[0] as number;
    norm.dispose();
    this.step++;
    this.consumedState = last!.loaderState;
    this.skipped = last!.skipped;
    const seconds = (performance.now() - started) / 1000;
    return {
      step: this.step,
      epoch: loaderStateEpoch(last!.loaderState),
      loss,
      lr,
      gradNorm,
      images,
      imagesPerSec: images / seconds,
      seconds,
      ...(tokens !== undefined && { tokens, tokensPerSec: tokens / seconds }),
      ...(tokens !== undefined && capacity !== undefined && { packCapacity: capacity }),
    };
  }

  /** Train until `until` updates are done (default: the run's length), checkpointing every `saveEvery` and at the end. */
  async run(o: RunOptions = {}): Promise<void> {
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
      writeModel: this.modelWriter(),
      optimizer: await this.optimizer.stateDict(),
      paramNames: this.paramNames,
    });
  }

  /** Free the model's GPU memory and stop the preprocessing workers. */
  dispose(): void {
    this.model.dispose();
    void this.batches.close();
  }
}
