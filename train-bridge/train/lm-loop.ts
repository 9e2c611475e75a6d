// The training loop of FastVLM's next-token objective (FastViTHD → projector → Qwen2): AdamW on the engine, cosine
// schedule with warmup, accumulation of micro-batches to the preset batch, clipping, checkpoints whose model/ folder
// is in the published FastVLM layout, and a resume that continues bit-exactly.
import { join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import * as ops from '../gpu/ops/index.ts';
import { AdamW } from '../gpu/optim/adamw.ts';
import { clipGradNorm } from '../gpu/optim/clip-grad-norm.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { StreamingDataset, type StreamingDatasetOptions } from '../loader/dataset.ts';
import type { LoaderState } from '../loader/state.ts';
import { FastVLM, fastVLMConfig, initFastVLM } from '../model/fastvlm.ts';
import { loadFastVLM, saveFastVLM, TOKENIZER_FILE } from '../model/fastvlm-checkpoint.ts';
import { FastVLMGpu } from '../model/fastvlm-gpu.ts';
import { loadQwen2Tokenizer, shippedTokenizerPath } from '../text/index.ts';
import { loadOptimizerState, readTrainerState, saveCheckpoint, type TrainerState } from './checkpoint.ts';
import { type ConversationBatch, ConversationStream } from './conversations.ts';
import type { MetricsLog, StepMetrics } from './metrics.ts';
import { extendRun, type RunConfig } from './presets.ts';
import { cosineWithWarmup } from './schedule.ts';

/** The model folder inside a checkpoint (config.json, tokenizer.json, safetensors: loadable as a FastVLM). */
export const MODEL_FOLDER = 'model';

export interface LmTrainerOptions {
  manifest: string;
  config?: RunConfig;
  resumeFrom?: string;
  extendTo?: number;
  /** Start from a FastVLM (or Qwen2-only: the tower and projector keep their init) checkpoint folder. */
  initFrom?: string;
  /** tokenizer.json to use (default: the init checkpoint's, else the shipped Qwen2 one). */
  tokenizer?: string;
  loader?: Omit<StreamingDatasetOptions, 'epoch'>;
  /** Told about model tensors an --init-from checkpoint lacked. */
  log?: (line: string) => void;
}

export class LmTrainer {
  step: number;
  private readonly params: Tensor[];
  private readonly paramNames: string[];
  private prefetched: Promise<ConversationBatch> | undefined;
  private consumedState: LoaderState;
  private skipped: number;

  private constructor(
    readonly eng: Engine,
    readonly config: RunConfig,
    readonly model: FastVLMGpu,
    readonly optimizer: AdamW,
    private readonly stream: ConversationStream,
    readonly tokenizerPath: string,
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

  static async create(eng: Engine, o: LmTrainerOptions): Promise<LmTrainer> {
    const resumed = o.resumeFrom ? await readTrainerState(o.resumeFrom) : undefined;
    const config = resumed ? extendRun(resumed.config, resumed.step, o.extendTo) : o.config;
    if (!config) throw new Error('LmTrainer.create: a run config or a checkpoint to resume is needed');
    if (config.objective !== 'lm' || !config.text) {
      throw new Error(`LmTrainer: ${config.model} is a ${config.objective}-objective run`);
    }
    const arch = fastVLMConfig(config.model);
    let model: FastVLM;
    let tokenizerPath = o.tokenizer ?? shippedTokenizerPath();
    if (o.resumeFrom) {
      const folder = join(o.resumeFrom, MODEL_FOLDER);
      model = (await loadFastVLM(folder, { config: arch })).model;
      tokenizerPath = join(folder, TOKENIZER_FILE);
    } else if (o.initFrom) {
      const loaded = await loadFastVLM(o.initFrom, {
        config: arch,
        partial: true,
        init: (m) => initFastVLM(m, config.seed),
      });
      if (loaded.missing.length > 0)
        o.log?.(`${o.initFrom}: ${loaded.missing.length} tensors not in the checkpoint keep their init`);
      model = loaded.model;
      if (!o.tokenizer) tokenizerPath = join(o.initFrom, TOKENIZER_FILE);
    } else {
      model = new FastVLM(arch);
      initFastVLM(model, config.seed);
    }
    const tokenizer = await loadQwen2Tokenizer(tokenizerPath);
    const gpu = new FastVLMGpu(eng, model, {
      vision: config.trainEncoder,
      projector: true,
      lm: config.trainLm,
    });
    const trainable = gpu.weights.trainable();
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
    const stream = new ConversationStream(
      dataset,
      {
        resolution: config.resolution,
        maxLength: config.text.maxLength,
        imageTokenPosition: config.text.imageTokenPosition,
        tokenizer,
      },
      resumed?.loader,
    );
    return new LmTrainer(
      eng,
      config,
      gpu,
      optimizer,
      stream,
      tokenizerPath,
      resumed,
      resumed?.loader ?? dataset.state(),
    );
  }

  get lr(): number {
    return cosineWithWarmup(this.step, this.config.steps, this.config.lr, this.config.warmupRatio);
  }

  private nextBatch(): Promise<ConversationBatch> {
    const batch = this.prefetched ?? this.stream.next(this.config.microBatch);
    this.prefetched = batch.then(() => this.stream.next(this.config.microBatch));
    this.prefetched.catch(() => {});
    return batch;
  }

  /** One optimiser update over batchSize samples (batchSize / microBatch accumulated passes). */
  async trainStep(): Promise<StepMetrics> {
    const { config, eng } = this;
    const started = performance.now();
    const passes = config.batchSize / config.microBatch;
    const r = config.resolution;
    const losses: Tensor[] = [];
    let last: ConversationBatch | undefined;
    let images = 0;
    let tokens = 0;
    for (let i = 0; i < passes; i++) {
      const batch = await this.nextBatch();
      const pixels =
        batch.images > 0
          ? eng.uploadU8(batch.pixels, [batch.images, r, r, 3], { scale: 1 / 255 })
          : undefined;
      // HF's Trainer averages each micro-batch's token-mean loss over the accumulation steps.
      const loss = eng.tidy(() => ops.scale(this.model.loss(batch.text, pixels), 1 / passes));
      eng.backward(loss);
      pixels?.dispose();
      losses.push(loss);
      last = batch;
      images += batch.images;
      for (const m of batch.text.attentionMask) tokens += m;
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
      epoch: last!.loaderState.epoch,
      loss,
      lr,
      gradNorm,
      images,
      imagesPerSec: images / seconds,
      seconds,
      tokens,
      tokensPerSec: tokens / seconds,
    };
  }

  async run(
    o: {
      until?: number;
      checkpointDir?: string;
      saveEvery?: number;
      metrics?: MetricsLog;
      onStep?: (m: StepMetrics) => void;
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

  /** Save the model (published layout, under model/), optimiser, schedule position and loader state. */
  async checkpoint(dir: string): Promise<string> {
    await this.model.weights.download();
    const model = this.model.model;
    return saveCheckpoint(dir, {
      step: this.step,
      config: this.config,
      loader: this.consumedState,
      skipped: this.skipped,
      writeModel: (folder, metadata) =>
        saveFastVLM(join(folder, MODEL_FOLDER), model, { tokenizer: this.tokenizerPath, metadata }),
      optimizer: await this.optimizer.stateDict(),
      paramNames: this.paramNames,
    });
  }

  /** Samples the text path refused so far, by reason. */
  get skipReasons(): ReadonlyMap<string, number> {
    return this.stream.skipReasons;
  }

  dispose(): void {
    this.model.dispose();
    void this.stream.close();
  }
}
