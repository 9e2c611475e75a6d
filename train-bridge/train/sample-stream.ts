// What the training streams share: the loader's samples in its keyed order across epochs (a resume continues the
// loader's state), two pixel buffers used in turn, and the preprocessing pool that decodes images into them.
import type { LoaderSample, StreamingDataset } from '../loader/dataset.ts';
import { PreprocessPool } from '../loader/preprocess-pool.ts';
import type { LoaderState } from '../loader/state.ts';

export interface SampleStreamOptions {
  /** Preprocessing worker threads (the loader's pool); default one per core. Ignored when `pool` is given. */
  threads?: number;
  /** Share a pool; it is not closed by `close()`. */
  pool?: PreprocessPool;
}

/** Two pixel buffers used in turn (one the consumer holds, one being filled by the prefetch) and the pool. */
export class PixelBuffers {
  private readonly buffers: SharedArrayBuffer[] = [];
  private calls = 0;
  private ownPool: PreprocessPool | undefined;

  constructor(private readonly poolOptions: SampleStreamOptions) {}

  /** The next of the two pixel buffers, at least `bytes` long (every byte a batch uses is overwritten). */
  next(bytes: number): SharedArrayBuffer {
    const slot = this.calls++ % 2;
    if (!this.buffers[slot] || this.buffers[slot].byteLength < bytes)
      this.buffers[slot] = new SharedArrayBuffer(bytes);
    return this.buffers[slot];
  }

  /** The preprocessing pool (the given one, else one started on first use). */
  pool(): PreprocessPool {
    this.ownPool ??= this.poolOptions.pool ?? new PreprocessPool(this.poolOptions.threads);
    return this.ownPool;
  }

  /** Stop the preprocessing workers (unless the pool was given). */
  async close(): Promise<void> {
    if (this.ownPool && !this.poolOptions.pool) await this.ownPool.close();
    this.ownPool = undefined;
  }
}

export abstract class SampleStream {
  private iterator: AsyncIterator<LoaderSample> | undefined;
  protected readonly pixels: PixelBuffers;
  private epoch: number;
  /** Samples passed over (for the run summary). */
  skipped = 0;
  /** Samples used since the current epoch began. */
  protected usedThisEpoch = 0;

  constructor(
    protected readonly dataset: StreamingDataset,
    poolOptions: SampleStreamOptions,
    resumeFrom?: LoaderState,
  ) {
    this.pixels = new PixelBuffers(poolOptions);
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

  /** Called when an epoch ends, before the next begins: throws when the epoch gave nothing to train on. */
  protected abstract checkEpochEnd(): void;

  /** The loader's next sample, moving on to the next epoch at the end of one. */
  protected async nextSample(): Promise<LoaderSample> {
    for (;;) {
      this.iterator ??= this.dataset[Symbol.asyncIterator]();
      const r = await this.iterator.next();
      if (!r.done) return r.value;
      this.checkEpochEnd();
      this.epoch++;
      this.usedThisEpoch = 0;
      this.dataset.setEpoch(this.epoch);
      this.iterator = undefined;
    }
  }

  /** Stop the preprocessing workers (unless the pool was given). */
  close(): Promise<void> {
    return this.pixels.close();
  }
}
