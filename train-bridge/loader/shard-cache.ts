// A bounded local cache of remote shard bytes, at the grain the loader reads: one row group's bytes per file, named by
// their sha256 from the manifest (content-addressed). Bytes are checked before they are stored and again when served,
// so a corrupt read is never kept and a damaged entry is fetched again. LRU by bytes.
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface ShardCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  bytes: number;
  entries: number;
}

let tempCounter = 0;

function passes(verify: (bytes: Uint8Array) => void, bytes: Uint8Array): boolean {
  try {
    verify(bytes);
    return true;
  } catch {
    return false;
  }
}

export class ShardCache {
  /** Entry name → size, in least-recently-used-first order (Map keeps insertion order; a hit re-inserts). */
  private readonly entries = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<Uint8Array>>();
  private bytes = 0;
  private ready: Promise<void> | undefined;
  readonly stats: ShardCacheStats = { hits: 0, misses: 0, evictions: 0, bytes: 0, entries: 0 };

  constructor(
    readonly dir: string,
    readonly maxBytes: number,
  ) {
    if (!Number.isFinite(maxBytes) || maxBytes <= 0)
      throw new RangeError(`shard cache: maxBytes must be positive, got ${maxBytes}`);
  }

  /** Adopt entries a previous run left in the folder, oldest first, so a restart keeps its warm cache. */
  private init(): Promise<void> {
    this.ready ??= (async () => {
      await mkdir(this.dir, { recursive: true });
      const found: { name: string; size: number; mtimeMs: number }[] = [];
      for (const name of await readdir(this.dir)) {
        if (!name.endsWith('.rg')) {
          if (name.includes('.tmp-')) await rm(join(this.dir, name), { force: true });
          continue;
        }
        const s = await stat(join(this.dir, name)).catch(() => undefined);
        if (s?.isFile()) found.push({ name, size: s.size, mtimeMs: s.mtimeMs });
      }
      found.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : 1));
      for (const f of found) this.add(f.name, f.size);
      await this.evict();
    })();
    return this.ready;
  }

  private add(name: string, size: number): void {
    this.entries.set(name, size);
    this.bytes += size;
    this.sync();
  }

  private sync(): void {
    this.stats.bytes = this.bytes;
    this.stats.entries = this.entries.size;
  }

  private async evict(): Promise<void> {
    while (this.bytes > this.maxBytes && this.entries.size > 0) {
      const [name, size] = this.entries.entries().next().value as [string, number];
      this.entries.delete(name);
      this.bytes -= size;
      this.stats.evictions++;
      this.sync();
      await rm(join(this.dir, name), { force: true });
    }
  }

  /**
   * The bytes stored under `key` (a row group's sha256): from the cache when they still pass `verify`, else fetched
   * once (concurrent callers share the fetch), checked with `verify` (which throws on a mismatch, so nothing is
   * stored), stored, and older entries evicted past maxBytes.
   */
  async rowGroupBytes(
    key: string,
    fetch: () => Promise<Uint8Array>,
    verify: (bytes: Uint8Array) => void,
  ): Promise<Uint8Array> {
    await this.init();
    const name = `${key}.rg`;
    const size = this.entries.get(name);
    if (size !== undefined) {
      const bytes = await readFile(join(this.dir, name)).catch(() => undefined);
      if (bytes && bytes.byteLength === size && passes(verify, bytes)) {
        this.stats.hits++;
        this.entries.delete(name);
        this.entries.set(name, size);
        return bytes;
      }
      // Removed, truncated or damaged behind our back: forget it and fetch again.
      this.entries.delete(name);
      this.bytes -= size;
      this.sync();
      await rm(join(this.dir, name), { force: true });
    }
    const running = this.inflight.get(name);
    if (running) return running;
    const job = (async () => {
      this.stats.misses++;
      const bytes = await fetch();
      verify(bytes);
      // An entry larger than the whole cache is served but not kept.
      if (bytes.byteLength <= this.maxBytes) {
        const tmp = join(this.dir, `${name}.tmp-${process.pid}-${tempCounter++}`);
        await writeFile(tmp, bytes);
        await rename(tmp, join(this.dir, name));
        this.add(name, bytes.byteLength);
        await this.evict();
      }
      return bytes;
    })();
    this.inflight.set(name, job);
    try {
      return await job;
    } finally {
      this.inflight.delete(name);
    }
  }
}
