// A pool of worker threads doing image normalisation, so a build keeps every core busy. Idle workers are unref'd
// (a forgotten pool never keeps the process alive) and close() ends them all; a crashed worker is replaced.
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { startBundledWorker } from '../core/bundled-worker.ts';
import { type ImageOutcome, type NormaliseOptions, normaliseImage } from './image-normalise.ts';

/** Anything that normalises images: the worker pool, or the same function run in this thread. */
export interface ImageNormaliser {
  normalise(bytes: Uint8Array, options: NormaliseOptions): Promise<ImageOutcome>;
  close(): Promise<void>;
}

/** Runs normaliseImage in the calling thread (tests, tiny inputs, or a caller that parallelises otherwise). */
export const inlineImageNormaliser: ImageNormaliser = {
  normalise: normaliseImage,
  close: async () => undefined,
};

/** Message to a worker. `bytes` is a copy whose buffer is transferred. */
export interface ImageRequest {
  id: number;
  bytes: Uint8Array;
  options: NormaliseOptions;
}

/** Reply from a worker. `keptOriginal`: the image is the request's bytes unchanged (not sent back). */
export type ImageResponse =
  | { id: number; outcome: ImageOutcome; keptOriginal: boolean; error?: undefined }
  | { id: number; error: string };

export class ImagePoolError extends Error {
  override name = 'ImagePoolError';
}

interface Job {
  id: number;
  bytes: Uint8Array;
  options: NormaliseOptions;
  resolve: (o: ImageOutcome) => void;
  reject: (e: Error) => void;
}

interface Slot {
  /** Undefined while the worker starts; requests wait in `waiting` until it is up. */
  worker?: Worker;
  waiting: ImageRequest[];
  inFlight: Map<number, Job>;
}

export interface ImagePoolOptions {
  /** Worker threads; default: every core (os.availableParallelism()). */
  size?: number;
  /**
   * Jobs handed to one worker at a time. Two keep a worker's next image queued in libvips while the reply to the
   * last one travels back, so the thread never idles between images.
   */
  perWorker?: number;
}

/**
 * The worker module. From TypeScript sources it is started from an esbuild bundle (core/bundled-worker.ts): a worker
 * that registered tsx itself cost 0.56–0.93 CPU-s to start, one on plain JavaScript 0.15–0.22 (docs/benchmarks.md).
 */
const WORKER_ENTRY = new URL('./image-worker.ts', import.meta.url);

let threadpoolWarned = false;

/**
 * sharp runs every operation on libuv's threadpool, which all worker threads share and which is sized once, at
 * process start, from UV_THREADPOOL_SIZE (default 4). With more workers than threadpool threads, images queue.
 */
function warnIfThreadpoolSmall(size: number): void {
  const threads = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  if (size > threads && !threadpoolWarned) {
    threadpoolWarned = true;
    process.emitWarning(
      `image pool of ${size} workers but UV_THREADPOOL_SIZE=${threads}: sharp can run only ${threads} images at a time; ` +
        `start node with UV_THREADPOOL_SIZE=${size} to use every core`,
      'MixforgePerformanceWarning',
    );
  }
}

export class ImagePool implements ImageNormaliser {
  readonly size: number;
  private readonly perWorker: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 0;
  private closed = false;

  constructor(options: ImagePoolOptions = {}) {
    this.size = Math.max(1, Math.floor(options.size ?? availableParallelism()));
    this.perWorker = Math.max(1, Math.floor(options.perWorker ?? 2));
    warnIfThreadpoolSmall(this.size);
  }

  normalise(bytes: Uint8Array, options: NormaliseOptions): Promise<ImageOutcome> {
    if (this.closed) return Promise.reject(new ImagePoolError('image pool is closed'));
    return new Promise<ImageOutcome>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, bytes, options, resolve, reject });
      this.dispatch();
    });
  }

  /** Terminates every worker; jobs not finished are rejected. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const error = new ImagePoolError('image pool closed before the image was processed');
    for (const job of this.queue.splice(0)) job.reject(error);
    const slots = this.slots.splice(0);
    for (const slot of slots) for (const job of slot.inFlight.values()) job.reject(error);
    // A worker still starting is terminated once it is up (onWorkerStarted sees the pool closed).
    await Promise.all(slots.map((s) => s.worker?.terminate()));
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.reduce<Slot | undefined>(
        (best, s) =>
          s.inFlight.size < this.perWorker && (!best || s.inFlight.size < best.inFlight.size) ? s : best,
        undefined,
      );
      // Start another worker rather than queue a second job on a busy one.
      if ((!slot || slot.inFlight.size > 0) && this.slots.length < this.size) slot = this.spawn();
      if (!slot) return;
      const job = this.queue.shift()!;
      slot.inFlight.set(job.id, job);
      slot.worker?.ref();
      // A real copy: Buffer#slice is a view, and transferring its buffer would detach the caller's bytes
      // (often a whole pooled slab shared with other records).
      const copy = new Uint8Array(job.bytes.byteLength);
      copy.set(job.bytes);
      const request: ImageRequest = { id: job.id, bytes: copy, options: job.options };
      if (slot.worker) slot.worker.postMessage(request, [copy.buffer]);
      else slot.waiting.push(request);
    }
  }

  private spawn(): Slot {
    const slot: Slot = { waiting: [], inFlight: new Map() };
    this.slots.push(slot);
    startBundledWorker(WORKER_ENTRY).then(
      (worker) => this.onWorkerStarted(slot, worker),
      (err: unknown) => this.onWorkerDied(slot, err instanceof Error ? err : new ImagePoolError(String(err))),
    );
    return slot;
  }

  private onWorkerStarted(slot: Slot, worker: Worker): void {
    if (this.closed || !this.slots.includes(slot)) {
      void worker.terminate();
      return;
    }
    slot.worker = worker;
    worker.on('message', (res: ImageResponse) => this.onResponse(slot, res));
    worker.on('error', (err: unknown) =>
      this.onWorkerDied(slot, err instanceof Error ? err : new ImagePoolError(String(err))),
    );
    worker.on('exit', (code) => {
      if (!this.closed) this.onWorkerDied(slot, new ImagePoolError(`image worker exited with code ${code}`));
    });
    for (const request of slot.waiting.splice(0))
      worker.postMessage(request, [request.bytes.buffer as ArrayBuffer]);
    if (slot.inFlight.size === 0) worker.unref();
  }

  private onResponse(slot: Slot, res: ImageResponse): void {
    const job = slot.inFlight.get(res.id);
    if (!job) return;
    slot.inFlight.delete(res.id);
    if (slot.inFlight.size === 0) slot.worker?.unref();
    if (res.error !== undefined) {
      job.reject(new ImagePoolError(`image worker failed: ${res.error}`));
    } else if (res.outcome.ok && res.keptOriginal) {
      const value = res.outcome.value;
      job.resolve({ ok: true, value: { ...value, image: { ...value.image, bytes: job.bytes } } });
    } else {
      job.resolve(res.outcome);
    }
    this.dispatch();
  }

  /** A worker that crashed takes its in-flight jobs with it; they fail, later jobs go to a fresh worker. */
  private onWorkerDied(slot: Slot, err: Error): void {
    const i = this.slots.indexOf(slot);
    if (i === -1) return;
    this.slots.splice(i, 1);
    const error = new ImagePoolError(`image worker died: ${err.message}`, { cause: err });
    for (const job of slot.inFlight.values()) job.reject(error);
    slot.inFlight.clear();
    slot.waiting.length = 0;
    void slot.worker?.terminate();
    this.dispatch();
  }
}

export function createImagePool(options: ImagePoolOptions = {}): ImagePool {
  return new ImagePool(options);
}
