// FastVLM's next-token objective (FastViTHD → projector → Qwen2) on the shared training loop (trainer-core.ts):
// checkpoints whose model/ folder is in the published FastVLM layout, and a resume that continues bit-exactly.
import { join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import * as ops from '../gpu/ops/index.ts';
import type { AdamW } from '../gpu/optim/adamw.ts';
import type { StreamingDatasetOptions } from '../loader/dataset.ts';
import type { LoaderState } from '../loader/state.ts';
import { FastVLM, fastVLMConfig, initFastVLM } from '../model/fastvlm.ts';
import { loadFastVLM, saveFastVLM, TOKENIZER_FILE } from '../model/fastvlm-checkpoint.ts';
import { FastVLMGpu } from '../model/fastvlm-gpu.ts';
import { loadQwen2Tokenizer, shippedTokenizerPath } from '../text/index.ts';
import type { CheckpointContents, TrainerState } from './checkpoint.ts';
import { type ConversationBatch, ConversationStream } from './conversations.ts';
import type { RunConfig } from './presets.ts';
import {
  createOptimizer,
  openDataset,
  type PassResult,
  type RunSource,
  resolveRun,
  TrainerCore,
} from './trainer-core.ts';

/** The model folder inside a checkpoint (config.json, tokenizer.json, safetensors: loadable as a FastVLM). */
export const MODEL_FOLDER = 'model';

export interface LmTrainerOptions extends RunSource {
  manifest: string;
  /** Start from a FastVLM (or Qwen2-only: the tower and projector keep their init) checkpoint folder. */
  initFrom?: string;
  /** tokenizer.json to use (default: the init checkpoint's, else the shipped Qwen2 one). */
  tokenizer?: string;
  loader?: Omit<StreamingDatasetOptions, 'epoch'>;
  /** Told about model tensors an --init-from checkpoint lacked. */
  log?: (line: string) => void;
}

export class LmTrainer extends TrainerCore<FastVLMGpu, ConversationBatch> {
  private constructor(
    eng: Engine,
    config: RunConfig,
    model: FastVLMGpu,
    optimizer: AdamW,
    private readonly conversations: ConversationStream,
    readonly tokenizerPath: string,
    resumed: TrainerState | undefined,
    initialLoaderState: LoaderState,
  ) {
    super(eng, config, model, optimizer, conversations, resumed, initialLoaderState);
  }

  static async create(eng: Engine, o: LmTrainerOptions): Promise<LmTrainer> {
    const { resumed, config } = await resolveRun(o, 'LmTrainer');
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
    const optimizer = await createOptimizer(gpu.weights, config, o.resumeFrom);
    const dataset = await openDataset(o.manifest, o.loader);
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

  protected pass(batch: ConversationBatch, passes: number): PassResult {
    const { config, eng } = this;
    const r = config.resolution;
    const pixels =
      batch.images > 0 ? eng.uploadU8(batch.pixels, [batch.images, r, r, 3], { scale: 1 / 255 }) : undefined;
    // HF's Trainer averages each micro-batch's token-mean loss over the accumulation steps.
    const loss = eng.tidy(() => ops.scale(this.model.loss(batch.text, pixels), 1 / passes));
    eng.backward(loss);
    pixels?.dispose();
    let tokens = 0;
    for (const m of batch.text.attentionMask) tokens += m;
    return { loss, images: batch.images, tokens };
  }

  protected modelWriter(): CheckpointContents['writeModel'] {
    const model = this.model.model;
    return (folder, metadata) =>
      saveFastVLM(join(folder, MODEL_FOLDER), model, { tokenizer: this.tokenizerPath, metadata });
  }

  /** Samples the text path refused so far, by reason. */
  get skipReasons(): ReadonlyMap<string, number> {
    return this.conversations.skipReasons;
  }
}
