// Batches for a training loop: samples of a rank-level StreamingDataset, images preprocessed in the worker pool into
// one batch tensor, collated with the conversations and the caption text, and the loader state after the batch.
import type { Turn } from '../../core/schema.ts';
import type { LoaderSample, StreamingDataset } from './dataset.ts';
import { FASTVLM_PREPROCESS, type ImageDtype, type PreprocessOptions } from './preprocess.ts';
import { PreprocessError, PreprocessPool } from './preprocess-pool.ts';
import type { LoaderState } from './state.ts';

export interface ImageTensor {
  dtype: ImageDtype;
  /** f32 / f16: [n, 3, R, R] (NCHW). u8: [n, R, R, 3] (NHWC, raw 0–255: normalise on the GPU). */
  layout: 'nchw' | 'nhwc';
  shape: [number, number, number, number];
  /** f16 values are binary16 bit patterns. Backed by a SharedArrayBuffer. */
  data: Float32Array | Uint16Array | Uint8Array;
}

export interface Batch {
  ids: string[];
  sources: string[];
  conversations: Turn[][];
  /** The caption text the training loop predicts: the last `gpt` turn of each conversation ('' when none). */
  captions: string[];
  images: ImageTensor;
  /** For each image of `images`, the index in the batch of its sample (samples hold 0, 1 or more images). */
  imageSample: Int32Array;
  /** Each image's size before padding and resizing. */
  sourceSizes: { width: number; height: number }[];
  /** Resume here to continue with the next batch. */
  state: LoaderState;
}

export interface BatchLoaderOptions extends Partial<PreprocessOptions> {
  batchSize: number;
  /** Preprocessing worker threads (ignored when `pool` is given). */
  threads?: number;
  /** Batches being prepared ahead of the consumer. */
  prefetchBatches?: number;
  /** Drop a last batch smaller than batchSize. */
  dropLast?: boolean;
  /** Share a pool between loaders; it is not closed by the loader. */
  pool?: PreprocessPool;
  /**
   * Reuse image-tensor memory: a batch's `images.data` stays valid only until the next batch is requested, then
   * holds a later batch. Saves allocating, zeroing and faulting in a fresh buffer per batch (100 MB for 8 f32
   * images at 1024²); for consumers that finish with a batch (e.g. upload it to the GPU) before asking for the next.
   */
  reuseBuffers?: boolean;
}

export function captionOf(conversation: readonly Turn[]): string {
  for (let i = conversation.length - 1; i >= 0; i--)
    if (conversation[i].from === 'gpt') return conversation[i].value;
  return '';
}

const BYTES: Record<ImageDtype, number> = { f32: 4, f16: 2, u8: 1 };

export class BatchLoader implements AsyncIterable<Batch> {
  readonly preprocess: PreprocessOptions;

  constructor(
    readonly dataset: StreamingDataset,
    readonly opts: BatchLoaderOptions,
  ) {
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1)
      throw new RangeError(`batchSize must be a positive integer, got ${opts.batchSize}`);
    if (dataset.numWorkers !== 1)
      throw new RangeError(
        'BatchLoader needs a rank-level dataset (numWorkers 1); it parallelises preprocessing itself',
      );
    this.preprocess = {
      resolution: opts.resolution ?? FASTVLM_PREPROCESS.resolution,
      mean: opts.mean ?? FASTVLM_PREPROCESS.mean,
      std: opts.std ?? FASTVLM_PREPROCESS.std,
      kernel: opts.kernel ?? FASTVLM_PREPROCESS.kernel,
      dtype: opts.dtype ?? FASTVLM_PREPROCESS.dtype,
    };
    const { resolution } = this.preprocess;
    if (!Number.isInteger(resolution) || resolution < 1 || resolution > 8192)
      throw new RangeError(`resolution must be an integer in [1, 8192], got ${resolution}`);
  }

  private async collate(
    samples: LoaderSample[],
    pool: PreprocessPool,
    allocate: (bytes: number) => SharedArrayBuffer,
  ): Promise<Batch> {
    const p = this.preprocess;
    const R = p.resolution;
    const imageSample: number[] = [];
    samples.forEach((s, i) => {
      for (let k = 0; k < s.images.length; k++) imageSample.push(i);
    });
    const n = imageSample.length;
    const perImage = 3 * R * R;
    const buffer = allocate(n * perImage * BYTES[p.dtype]);
    const jobs: Promise<{ width: number; height: number }>[] = [];
    let slot = 0;
    for (const s of samples)
      for (const [k, im] of s.images.entries()) {
        const offset = slot++ * perImage;
        jobs.push(
          pool.run(im.bytes, buffer, offset, p).then(
            ({ width, height }) => ({ width, height }),
            (err: unknown) => {
              throw new PreprocessError(`sample ${s.id} image ${k}: ${(err as Error).message}`);
            },
          ),
        );
      }
    const sourceSizes = await Promise.all(jobs);
    const data =
      p.dtype === 'f32'
        ? new Float32Array(buffer)
        : p.dtype === 'f16'
          ? new Uint16Array(buffer)
          : new Uint8Array(buffer);
    const last = samples[samples.length - 1];
    return {
      ids: samples.map((s) => s.id),
      sources: samples.map((s) => s.source),
      conversations: samples.map((s) => s.conversations),
      captions: samples.map((s) => captionOf(s.conversations)),
      images: {
        dtype: p.dtype,
        layout: p.dtype === 'u8' ? 'nhwc' : 'nchw',
        shape: p.dtype === 'u8' ? [n, R, R, 3] : [n, 3, R, R],
        data,
      },
      imageSample: Int32Array.from(imageSample),
      sourceSizes,
      state: this.dataset.stateAfter(last.rankIndex + 1),
    };
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Batch> {
    const pool = this.opts.pool ?? new PreprocessPool(this.opts.threads);
    const ahead = Math.max(1, this.opts.prefetchBatches ?? 2);
    const inflight: Promise<Batch>[] = [];
    // Buffers of batches the consumer is done with (reuseBuffers); every image slot is overwritten in full.
    const free: SharedArrayBuffer[] = [];
    const allocate = (bytes: number) => {
      const i = free.findIndex((b) => b.byteLength === bytes);
      return i >= 0 ? free.splice(i, 1)[0] : new SharedArrayBuffer(bytes);
    };
    const reuse = Boolean(this.opts.reuseBuffers);
    // Yields a batch; once the consumer asks for the next one, its buffer may be reused.
    async function* hand(job: Promise<Batch>): AsyncGenerator<Batch> {
      const batch = await job;
      yield batch;
      if (reuse) free.push(batch.images.data.buffer as SharedArrayBuffer);
    }
    const start = (samples: LoaderSample[]) => {
      const job = this.collate(samples, pool, allocate);
      // Awaited in order later; this only keeps an early failure from counting as unhandled.
      job.catch(() => {});
      inflight.push(job);
    };
    try {
      let pending: LoaderSample[] = [];
      for await (const s of this.dataset) {
        pending.push(s);
        if (pending.length === this.opts.batchSize) {
          start(pending);
          pending = [];
          if (inflight.length > ahead) yield* hand(inflight.shift()!);
        }
      }
      if (pending.length > 0 && !this.opts.dropLast) start(pending);
      while (inflight.length > 0) yield* hand(inflight.shift()!);
    } finally {
      if (!this.opts.pool) await pool.close();
    }
  }
}
