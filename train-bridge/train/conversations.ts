// Micro-batches for FastVLM's next-token objective, drawn from the streaming loader in its keyed order across
// epochs: each sample's conversation rendered and labelled as conv_qwen_2 (train-bridge/text), images decoded for
// the image slots that survive truncation, stacked in slot order. A sample the text path refuses is skipped, counted.
import { errorMessage } from '../../core/errors.ts';
import type { LoaderSample, StreamingDataset } from '../loader/dataset.ts';
import { FASTVLM_PREPROCESS, type PreprocessOptions } from '../loader/preprocess.ts';
import type { ShardRow } from '../loader/row-group-source.ts';
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
import type { PixelBuffers } from './sample-stream.ts';
import { SampleStream, type SampleStreamOptions } from './sample-stream.ts';

export interface ConversationBatch<S = LoaderState> {
  text: TextBatch;
  /** Images as u8 NHWC [images, R, R, 3] in text.imageSlots order (valid until the second next() after this one). */
  pixels: Uint8Array;
  images: number;
  sampleIds: string[];
  /** The loader's state right after this batch's last sample: where a run that consumed this batch resumes. */
  loaderState: S;
  /** Samples skipped up to then (the text path refused them: see `skipReasons`). */
  skipped: number;
}

export interface ConversationStreamOptions extends SampleStreamOptions {
  resolution: number;
  maxLength: number;
  imageTokenPosition: ImageTokenPosition;
  tokenizer: Qwen2Tokenizer;
}

/** A sample rendered, labelled and laid out for training, or why the text path refuses it. */
export function layoutConversation(
  sample: ShardRow,
  opts: Omit<ConversationStreamOptions, keyof SampleStreamOptions>,
): SequenceLayout | { refused: string } {
  const { tokenizer, maxLength, imageTokenPosition, resolution } = opts;
  try {
    const t = tokenizeConversation(sample.conversations, tokenizer, { imageTokenPosition, maxLength });
    return layoutSequence(t, tokensPerImageAt(resolution), maxLength);
  } catch (err) {
    if (!(err instanceof ConversationError)) throw err;
    return { refused: err.message };
  }
}

/** Decodes each slot's image (u8 NHWC at R×R) in the preprocessing workers into the next pixel buffer, in order. */
export async function decodeSlotImages(
  pixels: PixelBuffers,
  resolution: number,
  slots: readonly { sample: ShardRow; image: number }[],
): Promise<Uint8Array> {
  const plane = resolution * resolution * 3;
  const buffer = pixels.next(Math.max(1, slots.length * plane));
  const preprocess: PreprocessOptions = { ...FASTVLM_PREPROCESS, resolution, dtype: 'u8' };
  const pool = pixels.pool();
  await Promise.all(
    slots.map(({ sample, image: k }, i) => {
      const image = sample.images[k];
      if (!image) throw new Error(`sample ${sample.id}: no image ${k} for its <image> token`);
      return pool.run(image.bytes, buffer, i * plane, preprocess).catch((err: unknown) => {
        throw new Error(`sample ${sample.id}: image ${k} does not decode (${errorMessage(err)})`);
      });
    }),
  );
  return new Uint8Array(buffer, 0, slots.length * plane);
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
    const laid = layoutConversation(sample, this.opts);
    if (!('refused' in laid)) return laid;
    this.skipped++;
    this.skipReasons.set(laid.refused, (this.skipReasons.get(laid.refused) ?? 0) + 1);
    return undefined;
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
    const pixels = await decodeSlotImages(
      this.pixels,
      this.opts.resolution,
      text.imageSlots.map((slot) => ({ sample: picked[slot.sample]!.sample, image: slot.image })),
    );
    return {
      text,
      pixels,
      images: text.imageSlots.length,
      sampleIds: picked.map((p) => p.sample.id),
      loaderState,
      skipped: this.skipped,
    };
  }
}
