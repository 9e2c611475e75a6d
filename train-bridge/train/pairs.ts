// (image, caption) pairs for the alignment objective, drawn from the streaming loader in its keyed order across
// epochs: the first image of each sample with its answer turns as the caption; samples without an image are skipped.
import type { LoaderSample, StreamingDataset } from '../loader/dataset.ts';
import { squareRgb } from '../loader/preprocess.ts';
import type { LoaderState } from '../loader/state.ts';
import { type TextTowerConfig, tokenizeCaption } from './text-tower.ts';

export interface PairBatch {
  /** Images as u8 NHWC [n, R, R, 3]: padded to square with black (FastVLM's mean 0), resized with bicubic. */
  pixels: Uint8Array;
  /** n·maxTokens token ids (−1 padding). */
  ids: Int32Array;
  sampleIds: string[];
  captions: string[];
  /** The loader's state right after this batch's last sample: where a run that consumed this batch resumes. */
  loaderState: LoaderState;
  /** Samples skipped up to then. */
  skipped: number;
}

/** The caption of a sample: its assistant turns joined; undefined when the sample has no image or no answer. */
export function captionOf(sample: Pick<LoaderSample, 'images' | 'conversations'>): string | undefined {
  if (sample.images.length === 0) return undefined;
  const text = sample.conversations
    .filter((t) => t.from === 'gpt')
    .map((t) => t.value.replaceAll('<image>', '').trim())
    .filter((v) => v.length > 0)
    .join(' ');
  return text.length > 0 ? text : undefined;
}

export class PairStream {
  private iterator: AsyncIterator<LoaderSample> | undefined;
  private epoch: number;
  /** Samples passed over because they had no image or no caption (for the run summary). */
  skipped = 0;
  private pairsThisEpoch = 0;

  constructor(
    private readonly dataset: StreamingDataset,
    private readonly opts: { resolution: number; text: TextTowerConfig },
    resumeFrom?: LoaderState,
  ) {
    // A finished epoch resumes at the start of the next one (the loader's own rule).
    this.epoch = resumeFrom
      ? resumeFrom.position >= resumeFrom.total
        ? resumeFrom.epoch + 1
        : resumeFrom.epoch
      : 0;
    if (resumeFrom) dataset.resume(resumeFrom);
    else dataset.setEpoch(0);
  }

  /** Where the next batch would start: saved with checkpoints. */
  state(): LoaderState {
    return this.dataset.state();
  }

  get currentEpoch(): number {
    return this.epoch;
  }

  private async nextSample(): Promise<LoaderSample> {
    for (;;) {
      this.iterator ??= this.dataset[Symbol.asyncIterator]();
      const r = await this.iterator.next();
      if (!r.done) return r.value;
      if (this.pairsThisEpoch === 0 && this.skipped > 0) {
        throw new Error(
          `${this.dataset.manifestUri}: a whole epoch held no (image, caption) pair to train on`,
        );
      }
      this.epoch++;
      this.pairsThisEpoch = 0;
      this.dataset.setEpoch(this.epoch);
      this.iterator = undefined;
    }
  }

  /** The next n pairs, decoded and resized in parallel (sharp's thread pool). */
  async next(n: number): Promise<PairBatch> {
    const picked: { sample: LoaderSample; caption: string }[] = [];
    while (picked.length < n) {
      const sample = await this.nextSample();
      const caption = captionOf(sample);
      if (caption === undefined) {
        this.skipped++;
        continue;
      }
      this.pairsThisEpoch++;
      picked.push({ sample, caption });
    }
    const loaderState = this.dataset.state();
    const skipped = this.skipped;
    const { resolution, text } = this.opts;
    const plane = resolution * resolution * 3;
    const pixels = new Uint8Array(n * plane);
    await Promise.all(
      picked.map(async ({ sample }, i) => {
        try {
          const { pixels: rgb } = await squareRgb(sample.images[0].bytes, resolution, [0, 0, 0], 'cubic');
          pixels.set(rgb, i * plane);
        } catch (err) {
          throw new Error(
            `sample ${sample.id}: image does not decode (${err instanceof Error ? err.message : err})`,
          );
        }
      }),
    );
    const ids = new Int32Array(n * text.maxTokens);
    picked.forEach(({ caption }, i) => {
      ids.set(tokenizeCaption(caption, text), i * text.maxTokens);
    });
    return {
      pixels,
      ids,
      sampleIds: picked.map((p) => p.sample.id),
      captions: picked.map((p) => p.caption),
      loaderState,
      skipped,
    };
  }
}
