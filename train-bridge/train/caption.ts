// What a trained FastVLM says about an image: load a checkpoint (a FastVLM folder, a training step folder or a
// checkpoint dir's latest), render the prompt as conv_qwen_2 up to the assistant header, decode greedily with a KV cache.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { FASTVLM_PREPROCESS } from '../loader/preprocess.ts';
import { PreprocessPool } from '../loader/preprocess-pool.ts';
import { CONFIG_FILE, loadFastVLM, TOKENIZER_FILE } from '../model/fastvlm-checkpoint.ts';
import { generateGreedy } from '../model/fastvlm-generate.ts';
import { FastVLMGpu } from '../model/fastvlm-gpu.ts';
import {
  IGNORE_INDEX,
  IMAGE_TOKEN,
  layoutSequence,
  loadQwen2Tokenizer,
  type Qwen2Tokenizer,
  shippedTokenizerPath,
  tokenizeConversation,
  tokensPerImageAt,
} from '../text/index.ts';
import { latestCheckpoint } from './checkpoint.ts';
import { MODEL_FOLDER } from './lm-loop.ts';

export const DEFAULT_PROMPT = 'Describe the image in detail.';

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

/** The FastVLM folder a path names: itself, its model/ (a training step), or the model/ of its latest.json. */
export async function resolveModelFolder(path: string): Promise<string> {
  if (await isFile(join(path, CONFIG_FILE))) return path;
  if (await isFile(join(path, MODEL_FOLDER, CONFIG_FILE))) return join(path, MODEL_FOLDER);
  const latest = await latestCheckpoint(path);
  if (latest && (await isFile(join(latest, MODEL_FOLDER, CONFIG_FILE)))) return join(latest, MODEL_FOLDER);
  throw new Error(
    `${path}: not a FastVLM checkpoint (no ${CONFIG_FILE}, ${MODEL_FOLDER}/${CONFIG_FILE} or latest.json)`,
  );
}

/** The prompt's ids up to and including `<|im_start|>assistant\n`, −1 at image slots, and the slots. */
export function promptLayout(tok: Qwen2Tokenizer, question: string, images: number, resolution: number) {
  // The reference's predict puts `<image>` before the question when the question has none.
  const value = question.includes(IMAGE_TOKEN) ? question : `${`${IMAGE_TOKEN}\n`.repeat(images)}${question}`;
  const maxLength = 1 << 20;
  const t = tokenizeConversation(
    [
      { from: 'human', value },
      { from: 'gpt', value: '.' },
    ],
    tok,
    { imageTokenPosition: 'data', maxLength },
  );
  // The reply's first token is the first labelled one; everything before it is the prompt.
  const cut = t.labels.findIndex((l) => l !== IGNORE_INDEX);
  const prompt = { ids: t.ids.slice(0, cut), labels: t.labels.slice(0, cut) };
  return layoutSequence(prompt, tokensPerImageAt(resolution), maxLength);
}

export class Captioner {
  private readonly pool = new PreprocessPool(1);

  private constructor(
    readonly eng: Engine,
    readonly gpu: FastVLMGpu,
    readonly tokenizer: Qwen2Tokenizer,
    readonly resolution: number,
  ) {}

  static async open(eng: Engine, checkpoint: string, opts: { resolution?: number } = {}): Promise<Captioner> {
    const folder = await resolveModelFolder(checkpoint);
    const { model } = await loadFastVLM(folder);
    const tokPath = (await isFile(join(folder, TOKENIZER_FILE)))
      ? join(folder, TOKENIZER_FILE)
      : shippedTokenizerPath();
    const gpu = new FastVLMGpu(eng, model, { vision: false, projector: false, lm: false });
    return new Captioner(
      eng,
      gpu,
      await loadQwen2Tokenizer(tokPath),
      opts.resolution ?? model.config.resolution,
    );
  }

  /** Pixels of encoded images, preprocessed as training does, as one [n, R, R, 3] tensor in [0, 1]. */
  private async images(encoded: readonly Uint8Array[]): Promise<Tensor | undefined> {
    if (encoded.length === 0) return undefined;
    const r = this.resolution;
    const plane = r * r * 3;
    const buffer = new SharedArrayBuffer(encoded.length * plane);
    const options = { ...FASTVLM_PREPROCESS, resolution: r, dtype: 'u8' as const };
    await Promise.all(encoded.map((bytes, i) => this.pool.run(bytes, buffer, i * plane, options)));
    return this.eng.uploadU8(new Uint8Array(buffer), [encoded.length, r, r, 3], { scale: 1 / 255 });
  }

  /** The greedy answer to `question` about the images (one per `<image>`; prepended when the question has none). */
  async caption(
    images: readonly Uint8Array[],
    question = DEFAULT_PROMPT,
    maxNewTokens = 256,
  ): Promise<{ ids: number[]; text: string }> {
    const layout = promptLayout(this.tokenizer, question, images.length, this.resolution);
    const pixels = await this.images(images);
    try {
      const ids = await generateGreedy(this.gpu, {
        promptIds: layout.tokenIds.subarray(0, layout.length),
        imageSlots: layout.imageSlots.map((s) => ({ sample: 0, start: s.start, count: s.count })),
        images: pixels,
        maxNewTokens,
        stopIds: [this.tokenizer.imEndId, this.tokenizer.eosId],
      });
      return { ids, text: this.tokenizer.decode(ids) };
    } finally {
      pixels?.dispose();
    }
  }

  async close(): Promise<void> {
    this.gpu.dispose();
    await this.pool.close();
  }
}
