// FastVLM's next-token objective (FastViTHD → projector → Qwen2) on the shared training loop (trainer-core.ts):
// checkpoints whose model/ folder is in the published FastVLM layout, and a resume that continues bit-exactly.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { joinUri, storageFor } from '../../core/storage/index.ts';
import { manifestRoot } from '../../manifests/manifest.ts';
import { readTokenCountsIndex, TokenCountsError, tokenCountsDir } from '../../manifests/token-counts.ts';
import type { Engine } from '../gpu/engine.ts';
import * as ops from '../gpu/ops/index.ts';
import type { AdamW } from '../gpu/optim/adamw.ts';
import type { StreamingDatasetOptions } from '../loader/dataset.ts';
import { PackedDataset } from '../loader/packed-dataset.ts';
import { FastVLM, fastVLMConfig, initFastVLM } from '../model/fastvlm.ts';
import { loadFastVLM, saveFastVLM, TOKENIZER_FILE } from '../model/fastvlm-checkpoint.ts';
import { FastVLMGpu } from '../model/fastvlm-gpu.ts';
import { loadQwen2Tokenizer, shippedTokenizerPath } from '../text/index.ts';
import {
  type CheckpointContents,
  type TrainerState,
  type TrainLoaderState,
  unpackedLoaderState,
} from './checkpoint.ts';
import { type ConversationBatch, ConversationStream } from './conversations.ts';
import { PackedConversationStream } from './packed-conversations.ts';
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

/** An LM micro-batch: padded samples, or packs (with the token positions their rows offered). */
type LmBatchOf = ConversationBatch<TrainLoaderState> & { capacity?: number };

/**
 * The packer sizes samples by the token-count sidecar: counts made with another tokenizer or `<image>` placement
 * would overfill packs, so they are refused up front (the sidecar's absence is PackedDataset's own error).
 */
async function checkTokenCounts(
  manifest: string,
  resolution: number,
  imageTokenPosition: string,
  tokenizerPath: string,
): Promise<void> {
  const indexUri = joinUri(tokenCountsDir(manifestRoot(manifest), resolution), 'index.json');
  const index = await readTokenCountsIndex(indexUri);
  if (!index) return;
  const bytes = await storageFor(tokenizerPath).readAll(tokenizerPath);
  const sha = createHash('sha256').update(bytes).digest('hex');
  const problems = [
    index.imageTokenPosition !== imageTokenPosition &&
      `counted with --image-token-position ${index.imageTokenPosition}, the run uses ${imageTokenPosition}`,
    index.tokenizer !== sha && `counted with another tokenizer than ${tokenizerPath}`,
  ].filter(Boolean);
  if (problems.length)
    throw new TokenCountsError(
      `${indexUri}: ${problems.join('; ')} (rerun mixforge tokens ${manifest} --resolution ${resolution} with the run's settings)`,
    );
}

/** The packed loader over one built mixture (needs its token counts at `resolution`: mixforge tokens). */
export function packedDataset(
  manifest: string,
  pack: { capacity: number; window: number },
  resolution: number,
): PackedDataset {
  return new PackedDataset([{ manifest, weight: 1 }], { ...pack, resolution });
}

export class LmTrainer extends TrainerCore<FastVLMGpu, LmBatchOf> {
  private constructor(
    eng: Engine,
    config: RunConfig,
    model: FastVLMGpu,
    optimizer: AdamW,
    private readonly conversations: ConversationStream | PackedConversationStream,
    readonly tokenizerPath: string,
    resumed: TrainerState | undefined,
    initialLoaderState: TrainLoaderState,
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
    const text = {
      resolution: config.resolution,
      maxLength: config.text.maxLength,
      imageTokenPosition: config.text.imageTokenPosition,
      tokenizer,
    };
    const pack = config.text.pack;
    if (pack) {
      if (o.loader)
        throw new Error('LmTrainer: a packing run reads the keyed order; loader options do not apply');
      const saved = resumed?.loader;
      if (saved && saved.kind !== 'mixforge.packed-state')
        throw new Error(`${o.resumeFrom}: the checkpoint's loader state is not a packed one`);
      await checkTokenCounts(o.manifest, config.resolution, config.text.imageTokenPosition, tokenizerPath);
      const packed = packedDataset(o.manifest, pack, config.resolution);
      await packed.open();
      const stream = new PackedConversationStream(packed, { ...text, capacity: pack.capacity }, saved);
      return new LmTrainer(eng, config, gpu, optimizer, stream, tokenizerPath, resumed, stream.state());
    }
    const dataset = await openDataset(o.manifest, o.loader);
    const loaderState = o.resumeFrom ? unpackedLoaderState(resumed?.loader, o.resumeFrom) : undefined;
    const stream = new ConversationStream(dataset, text, loaderState);
    return new LmTrainer(
      eng,
      config,
      gpu,
      optimizer,
      stream,
      tokenizerPath,
      resumed,
      loaderState ?? dataset.state(),
    );
  }

  protected pass(batch: LmBatchOf, passes: number): PassResult {
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
    return { loss, images: batch.images, tokens, capacity: batch.capacity };
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
