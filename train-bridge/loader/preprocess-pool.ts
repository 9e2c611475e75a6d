// A fixed pool of worker threads for image preprocessing (preprocess-worker.ts). Each worker takes one image at a
// time; results land in the caller's SharedArrayBuffer, so messages carry only the encoded bytes and a status.
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { startBundledWorker } from '../../core/bundled-worker.ts';
import type { PreprocessOptions } from './preprocess.ts';
import type { PreprocessedImage, PreprocessReply, PreprocessTask } from './preprocess-worker.ts';

export class PreprocessError extends Error {
  override name = 'PreprocessError';
}

interface Pending {
  task: PreprocessTask;
  resolve: (r: PreprocessedImage) => void;
  reject: (e: Error) => void;
}

/**
 * Images in flight per worker: the next task is already there when one finishes, and while one waits for a sharp
 * decode on libuv's threadpool (non-JPEG input) the worker thread resizes and writes the other.
 */
const IN_FLIGHT_PER_WORKER = 2;

export class PreprocessPool {
  readonly threads: number;
  private readonly workers: Worker[] = [];
  /** Workers being started (the worker module is bundled first when running from TypeScript). */
  private readonly starting: Promise<void>[] = [];
  /** One entry per free slot (a worker appears up to IN_FLIGHT_PER_WORKER times). */
  private readonly idle: Worker[] = [];
  private readonly queue: Pending[] = [];
  private readonly running = new Map<Worker, Map<number, Pending>>();
  private nextId = 0;
  private closed = false;

  constructor(threads = Math.max(1, availableParallelism())) {
    if (!Number.isInteger(threads) || threads < 1)
      throw new RangeError(`threads must be a positive integer, got ${threads}`);
    this.threads = threads;
    const entry = new URL('./preprocess-worker.ts', import.meta.url);
    for (let i = 0; i < threads; i++)
      this.starting.push(
        startBundledWorker(entry).then(
          (w) => this.add(w),
          (err: unknown) =>
            this.fail(undefined, new PreprocessError(`preprocess worker did not start: ${err}`)),
        ),
      );
  }

  /** A started worker joins the pool (tasks queue until the first one has). */
  private async add(w: Worker): Promise<void> {
    if (this.closed) {
      await w.terminate();
      return;
    }
    w.on('message', (reply: PreprocessReply) => this.settle(w, reply));
    w.on('error', (err: unknown) =>
      this.fail(w, err instanceof Error ? err : new PreprocessError(String(err))),
    );
    w.on('exit', (code) => {
      if (!this.closed) this.fail(w, new PreprocessError(`preprocess worker exited with code ${code}`));
    });
    this.workers.push(w);
    this.running.set(w, new Map());
    for (let k = 0; k < IN_FLIGHT_PER_WORKER; k++) this.idle.push(w);
    this.pump();
  }

  /** Preprocess one encoded image into `out` at element `offset`. */
  run(
    bytes: Uint8Array,
    out: SharedArrayBuffer,
    offset: number,
    opts: PreprocessOptions,
  ): Promise<PreprocessedImage> {
    if (this.closed) return Promise.reject(new PreprocessError('preprocess pool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ task: { id: this.nextId++, bytes, out, offset, opts }, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop()!;
      const job = this.queue.shift()!;
      this.running.get(w)?.set(job.task.id, job);
      // Encoded bytes are usually a view into a whole row group's page buffer, and structured clone copies a view's
      // entire buffer: send a copy of just these bytes, transferred rather than cloned.
      const bytes = job.task.bytes.slice();
      w.postMessage({ ...job.task, bytes }, [bytes.buffer]);
    }
  }

  private settle(w: Worker, reply: PreprocessReply): void {
    const job = this.running.get(w)?.get(reply.id);
    if (!job) return;
    this.running.get(w)?.delete(reply.id);
    this.idle.push(w);
    if ('error' in reply) job.reject(new PreprocessError(reply.error));
    else job.resolve({ width: reply.width, height: reply.height, decoder: reply.decoder });
    this.pump();
  }

  private fail(w: Worker | undefined, err: Error): void {
    if (w) {
      for (const job of this.running.get(w)?.values() ?? []) job.reject(err);
      this.running.get(w)?.clear();
    }
    // A crashed worker is not replaced: fail what is queued rather than hang.
    if (!this.closed) {
      this.closed = true;
      for (const q of this.queue.splice(0))
        q.reject(new PreprocessError(`preprocess pool failed: ${err.message}`));
      void this.close();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.starting);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
