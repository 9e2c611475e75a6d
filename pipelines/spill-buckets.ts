// Bucket files on local disk for the passes that group rows by a key without holding them all (select's exact
// dedup, near-dedup's LSH bands): lines are buffered per bucket and appended once the buffer passes a byte bound.
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class SpillBuckets {
  private pending: string[][];
  private pendingBytes = 0;

  private constructor(
    readonly dir: string,
    readonly buckets: number,
    private readonly maxBytes: number,
  ) {
    this.pending = Array.from({ length: buckets }, () => []);
  }

  /** `buckets` files in a fresh temp folder named after `purpose`; buffers up to `maxBytes` before writing. */
  static async create(purpose: string, buckets: number, maxBytes: number): Promise<SpillBuckets> {
    return new SpillBuckets(await mkdtemp(join(tmpdir(), `mixforge-${purpose}-`)), buckets, maxBytes);
  }

  /** Adds a line (with its newline) to bucket `b`, writing every buffer out once they hold more than the bound. */
  async add(b: number, line: string): Promise<void> {
    this.pending[b].push(line);
    this.pendingBytes += line.length;
    if (this.pendingBytes > this.maxBytes) await this.flush();
  }

  async flush(): Promise<void> {
    for (const [b, lines] of this.pending.entries()) {
      if (lines.length) await appendFile(this.file(b), lines.join(''));
      this.pending[b] = [];
    }
    this.pendingBytes = 0;
  }

  /** Bucket b's file (absent when nothing went to it). */
  file(b: number): string {
    return join(this.dir, String(b));
  }

  async dispose(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
