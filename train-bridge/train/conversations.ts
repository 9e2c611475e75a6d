// Micro-batches for FastVLM's next-token objective, drawn from the streaming loader in its keyed order across
// epochs: each sample's conversation rendered and labelled as conv_qwen_2 (train-bridge/text), images decoded for
// the image slots that survive truncation, stacked in slot order. A sample the text path refuses is skipped, counted.
import { errorMessage } from '../../core/errors.ts';
import type { LoaderSample, StreamingDataset } from '../loader/dataset.ts';
import { FASTVLM_PREPROCESS, type PreprocessOptions } from '../loader/preprocess.ts';
import type { LoaderState } from '../loader/state.ts';
import {
  ConversationError,
  collate,
  type ImageTokenPosition,
  layoutSequence,
  type Qwen2Tokenizer,
  type SequenceLayout,
  type TextBatch,
  tokenizeConversation,
  tokensPerImageAt,
} from '../text/index.ts';
import { SampleStream, type SampleStreamOptions } from './sample-stream.ts';

export interface ConversationBatch {
  text: TextBatch;
  /** Images as u8 NHWC [images, R, R, 3] in text.imageSlots order (valid until the second next() after this one). */
  pixels: Uint8Array;
  images: number;
  sampleIds: string[];
  /** The loader's state right after this batch's last sample: where a run that consumed this batch resumes. */
  loaderState: LoaderState;
  /** Samples skipped up to then (the text path refused them: see `skipReasons`). */
  skipped: number;
}

export interface ConversationStreamOptions extends SampleStreamOptions {
  resolution: number;
  maxLength: number;
  imageTokenPosition: ImageTokenPosition;
  tokenizer: Qwen2Tokenizer;
}

export class ConversationStream extends SampleStream {
  /** Why samples were skipped, with counts (e.g. "turns do not alternate"). */
  readonly skipReasons = new Map<string, number>();

  constructor(
    dataset: StreamingDataset,
    private readonly opts: ConversationStreamOptions,
    resumeFrom?: LoaderState,
  ) {
    super(dataset, opts, resumeFrom);
  }

  protected checkEpochEnd(): void {
    if (this.usedThisEpoch === 0) {
      throw new Error(`${this.dataset.manifestUri}: a whole epoch held no conversation to train on`);
    }
  }

  /** The sample laid out for training, or undefined (counted under its reason) when the text path refuses it. */
  private layout(sample: LoaderSample): SequenceLayout | undefined {
    const { tokenizer, maxLength, imageTokenPosition, resolution } = this.opts;
    try {
      const t = tokenizeConversation(sample.conversations, tokenizer, { imageTokenPosition, maxLength });
      return layoutSequence(t, tokensPerImageAt(resolution), maxLength);
    } catch (err) {
      if (!(err instanceof ConversationError)) throw err;
      this.skipped++;
      this.skipReasons.set(err.message, (this.skipReasons.get(err.message) ?? 0) + 1);
      return undefined;
    }
  }

  /** The next n conversations as one right-padded batch, their images decoded in the preprocessing workers. */
  async next(n: number): Promise<ConversationBatch> {
    const picked: { sample: LoaderSample; layout: SequenceLayout }[] = [];
    while (picked.length < n) {
      const sample = await this.nextSample();
      const layout = this.layout(sample);
      if (!layout) continue;
      this.usedThisEpoch++;
      picked.push({ sample, layout });
    }
    const loaderState = this.dataset.state();
    const text = collate(
      picked.map((p) => p.layout),
      this.opts.tokenizer.padId,
    );
    const r = this.opts.resolution;
    const plane = r * r * 3;
    const images = text.imageSlots.length;
    const buffer = this.nextBuffer(Math.max(1, images * plane));
    const preprocess: PreprocessOptions = { ...FASTVLM_PREPROCESS, resolution: r, dtype: 'u8' };
    const pool = this.pool();
    await Promise.all(
      text.imageSlots.map((slot, i) => {
        const sample = picked[slot.sample]!.sample;
        const image = sample.images[slot.image];
        if (!image) throw new Error(`sample ${sample.id}: no image ${slot.image} for its <image> token`);
        return pool.run(image.bytes, buffer, i * plane, preprocess).catch((err: unknown) => {
          throw new Error(`sample ${sample.id}: image ${slot.image} does not decode (${errorMessage(err)})`);
        });
      }),
    );
    return {
      text,
      pixels: new Uint8Array(buffer, 0, images * plane),
      images,
      sampleIds: picked.map((p) => p.sample.id),
      loaderState,
      skipped: this.skipped,
    };
  }
}
