// A tensor: a shape plus a pooled GPU buffer of f32, row-major (feature maps NHWC). Tensors are values:
// ops never write into their inputs. Lifetime is managed by Engine.tidy scopes and the tape.
import type { PooledBuffer } from './buffer-pool.ts';
import type { BufferRange } from './pipeline-cache.ts';

/**
 * The engine that made a tensor, as far as the tensor itself needs it. engine.ts widens this interface to
 * the whole Engine (module augmentation), so `x.engine` gives ops the full engine while this file, like
 * every file the engine imports, never imports engine.ts: no import cycle.
 */
export interface TensorEngine {
  readonly storageAlign: number;
  wholeRange(t: Tensor): BufferRange;
  readTensor(t: Tensor): Promise<Float32Array>;
  releaseStorage(b: PooledBuffer): void;
}

let nextTensorId = 1;

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

export class Tensor {
  readonly id = nextTensorId++;
  readonly size: number;
  readonly dtype = 'f32' as const;
  /** True for parameters and for outputs of recorded ops that depend on one. */
  requiresGrad = false;
  /** Accumulated gradient (parameters only). */
  grad?: Tensor;
  /** Parameters (and their grads, optimiser moments) survive tidy scopes. */
  kept = false;
  name?: string;
  /** Number of tape entries that still need this tensor for backward. */
  tapeRefs = 0;
  private disposeRequested = false;
  private released = false;

  constructor(
    readonly engine: TensorEngine,
    readonly shape: readonly number[],
    readonly storage: PooledBuffer,
  ) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`invalid tensor shape ${shapeString(shape)}`);
    }
    this.size = shapeSize(shape);
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.released || this.disposeRequested;
  }

  /** The whole tensor as one binding (throws when it exceeds the device's binding limit). */
  range(): BufferRange {
    this.assertLive();
    return this.engine.wholeRange(this);
  }

  /** Elements [start, start + count) as a binding; start must be binding-aligned (see Engine.chunks). */
  slice(start: number, count: number): BufferRange {
    this.assertLive();
    return { buf: this.storage, offset: start * 4, size: Math.max(4, count * 4) };
  }

  /**
   * Elements [start, start + count) as a binding that starts at the aligned offset at or below `start`;
   * `base` is where element `start` sits inside it (kernels add it to their indices).
   */
  window(start: number, count: number): { range: BufferRange; base: number } {
    this.assertLive();
    const align = this.engine.storageAlign;
    const offset = Math.floor((start * 4) / align) * align;
    const base = start - offset / 4;
    return { range: { buf: this.storage, offset, size: Math.max(4, (base + count) * 4) }, base };
  }

  assertLive(): void {
    if (this.released)
      throw new Error(`tensor ${this.name ?? this.id} ${shapeString(this.shape)} used after dispose`);
  }

  async read(): Promise<Float32Array> {
    this.assertLive();
    return this.engine.readTensor(this);
  }

  dispose(): void {
    if (this.released) return;
    if (this.tapeRefs > 0) {
      this.disposeRequested = true;
      return;
    }
    this.released = true;
    this.engine.releaseStorage(this.storage);
  }

  /** Called by the tape when it lets go of this tensor. */
  releaseTapeRef(): void {
    this.tapeRefs--;
    if (this.tapeRefs === 0 && this.disposeRequested && !this.released) {
      this.released = true;
      this.engine.releaseStorage(this.storage);
    }
  }
}
