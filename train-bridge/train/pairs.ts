// (image, caption) pairs for the alignment objective, drawn from the streaming loader in its keyed order across
// epochs: the first image of each sample with its answer turns as the caption; samples without an image are skipped.
import { errorMessage } from '../../core/errors.ts';
import type { LoaderSample, StreamingDataset } from '../loader/dataset.ts';
import { FASTVLM_PREPROCESS, type PreprocessOptions } from '../loader/preprocess.ts';
import type { LoaderState } from '../loader/state.ts';
import { SampleStream, type SampleStreamOptions } from './sample-stream.ts';
import { type TextTowerConfig, tokenizeCaption } from './text-tower.ts';

export interface PairBatch {
  /**
   * Images as u8 NHWC [n, R, R, 3]: padded to square with black (FastVLM's mean 0), resized with bicubic. Backed by
   * one of the stream's two SharedArrayBuffers: valid until the second `next()` call after the one that made it.
   */
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

export interface PairStreamOptions extends SampleStreamOptions {
  resolution: number;
  text: TextTowerConfig;
}

export class PairStream extends SampleStream {
  constructor(
    dataset: StreamingDataset,
    private readonly opts: PairStreamOptions,
    resumeFrom?: LoaderState,
  ) {
    super(dataset, opts, resumeFrom);
  }

  protected checkEpochEnd(): void {
    if (this.usedThisEpoch === 0 && this.skipped > 0) {
      throw new Error(`${this.dataset.manifestUri}: a whole epoch held no (image, caption) pair to train on`);
    }
  }

  /** The next n pairs, decoded, padded and resized in the loader's preprocessing worker threads. */
  async next(n: number): Promise<PairBatch> {
    const picked: { sample: LoaderSample; caption: string }[] = [];
    while (picked.length < n) {
      const sample = await this.nextSample();
      const caption = captionOf(sample);
      if (caption === undefined) {
        this.skipped++;
        continue;
      }
      this.usedThisEpoch++;
      picked.push({ sample, caption });
    }
    const loaderState = this.dataset.state();
    const skipped = this.skipped;
    const { resolution, text } = this.opts;
    const plane = resolution * resolution * 3;
    const buffer = this.pixels.next(n * plane);
    const preprocess: PreprocessOptions = { ...FASTVLM_PREPROCESS, resolution, dtype: 'u8' };
    const pool = this.pixels.pool();
    await Promise.all(
      picked.map(({ sample }, i) =>
        pool.run(sample.images[0].bytes, buffer, i * plane, preprocess).catch((err: unknown) => {
          throw new Error(`sample ${sample.id}: image does not decode (${errorMessage(err)})`);
        }),
      ),
    );
    const ids = new Int32Array(n * text.maxTokens);
    picked.forEach(({ caption }, i) => {
      ids.set(tokenizeCaption(caption, text), i * text.maxTokens);
    });
    return {
      pixels: new Uint8Array(buffer, 0, n * plane),
      ids,
      sampleIds: picked.map((p) => p.sample.id),
      captions: picked.map((p) => p.caption),
      loaderState,
      skipped,
    };
  }
}
