// Ranged reads of one archive object with a few cached blocks, so that many small reads (zip central
// directory entries, tar headers, a member's header then its data) cost one storage request each block.
import { storageFor } from '../../core/storage/index.ts';

interface Block {
  start: number;
  bytes: Uint8Array;
}

export class CachedRangeReader {
  private blocks: Block[] = [];
  /** Exact spans to fetch when a read starts at a given offset (a member's header + data). */
  private readonly hints = new Map<number, number>();
  /** Minimum bytes fetched on a miss. */
  blockBytes: number;

  constructor(
    readonly uri: string,
    readonly size: number,
    options: { blockBytes: number; maxBlocks: number },
  ) {
    this.blockBytes = options.blockBytes;
    this.maxBlocks = options.maxBlocks;
  }

  private readonly maxBlocks: number;

  /** The next read starting exactly at `start` should fetch `length` bytes in one request. */
  hint(start: number, length: number): void {
    this.hints.set(start, length);
  }

  async read(start: number, end: number): Promise<Uint8Array> {
    end = Math.min(end, this.size);
    if (end <= start) return new Uint8Array(0);
    for (let k = this.blocks.length - 1; k >= 0; k--) {
      const b = this.blocks[k];
      if (start >= b.start && end <= b.start + b.bytes.length) {
        // Most recently used last.
        if (k !== this.blocks.length - 1) this.blocks.push(...this.blocks.splice(k, 1));
        return b.bytes.subarray(start - b.start, end - b.start);
      }
    }
    const hinted = this.hints.get(start);
    if (hinted !== undefined) this.hints.delete(start);
    const want = Math.max(end - start, hinted ?? this.blockBytes);
    const fetchEnd = Math.min(this.size, start + want);
    const bytes = await storageFor(this.uri).readRange(this.uri, start, fetchEnd);
    this.blocks.push({ start, bytes });
    if (this.blocks.length > this.maxBlocks) this.blocks.shift();
    return bytes.subarray(0, end - start);
  }

  /** Drop cached blocks (after indexing, so the index does not keep megabytes of directory alive). */
  clear(): void {
    this.blocks = [];
    this.hints.clear();
  }
}
