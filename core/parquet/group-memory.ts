// Recycled memory for the large buffers of one row group (column chunks as read, decompressed pages). On the dev VM
// first-touching fresh memory costs ~40× writing warm memory, and a 75 MB page is a fresh mmap every time.
// Measurements: docs/benchmarks.md ("Parquet reader"); the choice: docs/decisions.md ("Parquet").

/** Buffers smaller than this come from the ordinary allocator, which recycles small blocks by itself. */
export const LARGE_BUFFER_BYTES = 1 << 20;

/**
 * Free slabs kept between groups (and between readers in one process; two readers at once is the usual ingest
 * concurrency); more are left to the GC. What this keeps after the last read: about two compressed image chunks.
 */
const KEPT_FREE_SLABS = 2;

/** ES2024 resizable ArrayBuffer (Node ≥ 20); the project's TS lib is ES2023. */
interface Slab extends ArrayBuffer {
  readonly maxByteLength: number;
  resize(byteLength: number): void;
}

const ResizableArrayBuffer = ArrayBuffer as unknown as new (
  byteLength: number,
  options: { maxByteLength: number },
) => Slab;

const free: Slab[] = [];

/** Test-only debug check: released memory is overwritten at once, so a value read after its release shows it. */
let poisonOnRelease = false;

/** Fill every buffer handed back from now on with 0xdb (tests: a caller that releases too early sees garbage). */
export function poisonReleasedMemory(enabled: boolean): void {
  poisonOnRelease = enabled;
}

/**
 * A free slab that can hold `length` bytes: the one whose current size is closest (resizing by a few MB commits or
 * releases only the difference), or a new one with room to grow.
 */
function takeSlab(length: number): Slab {
  let best = -1;
  for (let i = 0; i < free.length; i++) {
    if (free[i].maxByteLength < length) continue;
    if (best < 0 || Math.abs(free[i].byteLength - length) < Math.abs(free[best].byteLength - length))
      best = i;
  }
  const slab =
    best >= 0
      ? free.splice(best, 1)[0]
      : new ResizableArrayBuffer(length, { maxByteLength: Math.max(2 * length, 64 << 20) });
  slab.resize(length);
  return slab;
}

/**
 * The large buffers one row group is decoded from. Everything taken stays valid until `release()`; before that,
 * every value that is a view into this memory must be copied out (`detachRows`).
 */
export class GroupMemory {
  private readonly taken = new Set<ArrayBufferLike>();

  /** An ArrayBuffer of exactly `length` bytes (recycled, contents undefined). */
  take(length: number): ArrayBuffer {
    const slab = takeSlab(length);
    this.taken.add(slab);
    return slab;
  }

  owns(buffer: ArrayBufferLike): boolean {
    return this.taken.has(buffer);
  }

  get size(): number {
    return this.taken.size;
  }

  /** Hand the group's buffers back for the next group (of this reader or another). */
  release(): void {
    for (const slab of this.taken) {
      if (poisonOnRelease) new Uint8Array(slab).fill(0xdb);
      if (free.length < KEPT_FREE_SLABS) free.push(slab as Slab);
    }
    this.taken.clear();
  }

  /** After a failed group: a read may still be landing in these buffers, so they are not reused. */
  discard(): void {
    this.taken.clear();
  }
}

/**
 * Replace, in place, every typed-array value of `rows` (at any depth of lists and structs) that is a view into
 * `memory` by a copy of its bytes, so the rows outlive the group's buffers. A view seen twice (a dictionary value
 * repeated) is copied once.
 */
export function detachRows(rows: Record<string, unknown>[], memory: GroupMemory): void {
  if (memory.size === 0) return;
  const copies = new Map<ArrayBufferView, unknown>();
  const detach = (value: unknown): unknown => {
    if (value === null || typeof value !== 'object') return value;
    if (ArrayBuffer.isView(value)) {
      if (!memory.owns(value.buffer)) return value;
      let copy = copies.get(value);
      if (copy === undefined) {
        // slice() of a typed array copies into fresh, right-sized memory of the same type.
        copy = value instanceof DataView ? new DataView(copyBytes(value)) : (value as Uint8Array).slice();
        copies.set(value, copy);
      }
      return copy;
    }
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) value[i] = detach(value[i]);
      return value;
    }
    if (Object.getPrototypeOf(value) === Object.prototype) {
      const obj = value as Record<string, unknown>;
      for (const key of Object.keys(obj)) obj[key] = detach(obj[key]);
    }
    return value;
  };
  for (const row of rows) detach(row);
}

function copyBytes(view: ArrayBufferView): ArrayBuffer {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice().buffer;
}
