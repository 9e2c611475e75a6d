// Reuses GPU storage buffers across steps: sizes are rounded to size classes (at most 12.5 % waste) and
// released buffers wait in per-class free lists, so a training step allocates nothing after the first one.
// A free list hands out its lowest-id buffer: the free set at the start of each step is the same, so every step
// gets the same buffers in the same places and the pipeline cache's bind groups (keyed by buffer) all hit. A LIFO
// list would permute the buffers from step to step and miss most of them (~870 createBindGroup a step at 64²).

/** Rounds up to 256 bytes, then to one of 8 steps between consecutive powers of two. */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 256) * 256);
  const pow = 2 ** Math.floor(Math.log2(b));
  if (pow <= 2048) return pow === b ? b : pow * 2;
  const step = pow / 8;
  return Math.ceil(b / step) * step;
}

export interface PooledBuffer {
  buffer: GPUBuffer;
  /** Stable id used in bind-group cache keys. */
  id: number;
  bytes: number;
  /** Tensors sharing this buffer (reshape views); back to the pool at zero. */
  refs: number;
}

export class BufferPool {
  private readonly free = new Map<number, PooledBuffer[]>();
  private nextId = 1;
  allocatedBytes = 0;
  inUseBytes = 0;
  /** Called with the id of a buffer that is destroyed, so caches holding it can drop it. */
  onDestroy?: (id: number) => void;

  constructor(private readonly device: GPUDevice) {}

  acquire(bytes: number): PooledBuffer {
    const cls = sizeClass(bytes);
    const list = this.free.get(cls);
    const hit = list?.pop();
    if (hit) {
      hit.refs = 1;
      this.inUseBytes += cls;
      return hit;
    }
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const buffer = this.device.createBuffer({ size: cls, usage });
    this.allocatedBytes += cls;
    this.inUseBytes += cls;
    return { buffer, id: this.nextId++, bytes: cls, refs: 1 };
  }

  release(b: PooledBuffer): void {
    if (--b.refs > 0) return;
    this.inUseBytes -= b.bytes;
    let list = this.free.get(b.bytes);
    if (!list) {
      list = [];
      this.free.set(b.bytes, list);
    }
    // Sorted by descending id, so pop() takes the lowest.
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((list[mid] as PooledBuffer).id > b.id) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, b);
  }

  /** Destroys every idle buffer (e.g. after a change of resolution). */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.onDestroy?.(b.id);
        b.buffer.destroy();
        this.allocatedBytes -= b.bytes;
      }
    }
    this.free.clear();
  }
}
