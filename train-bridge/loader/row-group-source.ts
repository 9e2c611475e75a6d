// Reads row groups of a built mixture's shards (local or S3) for the loader: one ranged read per row group (only the
// loader's columns), optionally through the local ShardCache, with a bounded LRU of decoded groups and of footers.

import { errorMessage, SourceFileError } from '../../core/errors.ts';
import { openParquet, type ParquetFileHandle, readRowGroups } from '../../core/parquet/read.ts';
import type { SampleImage, Turn } from '../../core/schema.ts';
import { isS3Uri, joinUri, storageFor } from '../../core/storage/index.ts';
import type { ShardCache } from './shard-cache.ts';

/** The columns the loader reads; `origin` and `key` are skipped. */
export const LOADER_COLUMNS = ['id', 'source', 'images', 'conversations'];

/** A row as the loader keeps it. */
export interface ShardRow {
  id: string;
  source: string;
  images: SampleImage[];
  conversations: Turn[];
}

export interface ShardEntry {
  path: string;
  rows: number;
  bytes: number;
  sha256: string;
}

const text = (v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : String(v));

function toRow(r: Record<string, unknown>): ShardRow {
  const images = (r.images as Record<string, unknown>[] | null) ?? [];
  const turns = (r.conversations as Record<string, unknown>[] | null) ?? [];
  return {
    id: text(r.id),
    source: text(r.source),
    images: images.map((im) => ({
      bytes: im.bytes as Uint8Array,
      width: Number(im.width),
      height: Number(im.height),
      format: text(im.format),
    })),
    conversations: turns.map((t) => ({ from: text(t.from) as Turn['from'], value: text(t.value) })),
  };
}

/** A tiny LRU over promises: a hit moves to the back, the front is evicted past capacity. */
class PromiseLru<T> {
  private readonly map = new Map<string, Promise<T>>();
  constructor(private capacity: number) {}
  get(key: string, make: () => Promise<T>): Promise<T> {
    let p = this.map.get(key);
    if (p) this.map.delete(key);
    else {
      p = make();
      // A failed load is not cached: the next request retries it.
      p.catch(() => {
        if (this.map.get(key) === p) this.map.delete(key);
      });
    }
    this.map.set(key, p);
    while (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as string);
    return p;
  }
  has(key: string): boolean {
    return this.map.has(key);
  }
  resize(capacity: number): void {
    this.capacity = Math.max(1, capacity);
  }
}

export interface RowGroupSourceOptions {
  /** Rows per row group the epoch order assumes (checked against every footer). */
  rowGroupSize: number;
  /** Decoded row groups kept in memory (the loader's memory bound, with the shuffle window). */
  decodedGroups: number;
  /** Opened footers kept in memory. */
  footers?: number;
  /** Local cache for remote shards; local shards are read in place. */
  cache?: ShardCache;
}

export class RowGroupSource {
  private readonly footers: PromiseLru<ParquetFileHandle>;
  private readonly groups: PromiseLru<ShardRow[]>;
  /** Remote bytes fetched (ranged reads), for tests and the benchmark. */
  bytesFetched = 0;
  groupsDecoded = 0;

  constructor(
    readonly root: string,
    readonly shards: readonly ShardEntry[],
    readonly opts: RowGroupSourceOptions,
  ) {
    this.footers = new PromiseLru(opts.footers ?? 64);
    this.groups = new PromiseLru(opts.decodedGroups);
  }

  shardUri(shard: number): string {
    return joinUri(this.root, this.shards[shard].path);
  }

  setDecodedCapacity(n: number): void {
    this.groups.resize(n);
  }

  private footer(shard: number): Promise<ParquetFileHandle> {
    return this.footers.get(String(shard), async () => {
      const entry = this.shards[shard];
      const uri = this.shardUri(shard);
      const handle = await openParquet(uri, entry.bytes);
      if (handle.numRows !== entry.rows)
        throw new SourceFileError(uri, `${handle.numRows} rows, the manifest says ${entry.rows}`);
      handle.rowGroups.forEach((g) => {
        const expected = Math.min(this.opts.rowGroupSize, entry.rows - g.index * this.opts.rowGroupSize);
        if (g.numRows !== expected)
          throw new SourceFileError(
            uri,
            `row group ${g.index} holds ${g.numRows} rows; the loader expects ${expected} (row groups of ${this.opts.rowGroupSize})`,
          );
      });
      for (const c of LOADER_COLUMNS)
        if (!handle.columns.includes(c))
          throw new SourceFileError(uri, `no column "${c}" (not a mixforge.sample/v1 shard)`);
      return handle;
    });
  }

  /** Byte span of the loader's columns in row group g (column chunks of a group are contiguous in the file). */
  private groupSpan(handle: ParquetFileHandle, g: number): { start: number; end: number } {
    let start = Number.POSITIVE_INFINITY;
    let end = 0;
    for (const c of handle.metadata.row_groups[g].columns) {
      const m = c.meta_data;
      if (!m || !LOADER_COLUMNS.includes(m.path_in_schema[0])) continue;
      const s = Number(m.dictionary_page_offset ?? m.data_page_offset);
      const chunkStart = m.dictionary_page_offset !== undefined && s > 0 ? s : Number(m.data_page_offset);
      start = Math.min(start, chunkStart);
      end = Math.max(end, chunkStart + Number(m.total_compressed_size));
    }
    return { start, end };
  }

  private async load(shard: number, group: number): Promise<ShardRow[]> {
    const handle = await this.footer(shard);
    const uri = handle.uri;
    const span = this.groupSpan(handle, group);
    const fetch = async () => {
      const b = await storageFor(uri).readRange(uri, span.start, span.end);
      this.bytesFetched += b.byteLength;
      return b;
    };
    const cache = this.opts.cache;
    const bytes =
      cache && isS3Uri(uri)
        ? await cache.rowGroupBytes(this.shards[shard].sha256, group, fetch)
        : await fetch();
    if (bytes.byteLength !== span.end - span.start)
      throw new SourceFileError(
        uri,
        `row group ${group}: read ${bytes.byteLength} bytes, expected ${span.end - span.start}`,
      );
    const inner = handle.file;
    // Serve hyparquet's slices of this group from the one ranged read; anything else (never expected) falls through.
    const file = {
      byteLength: inner.byteLength,
      slice(s: number, e = inner.byteLength) {
        if (s >= span.start && e <= span.end) {
          const view = bytes.subarray(s - span.start, e - span.start);
          return view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength) as ArrayBuffer;
        }
        return inner.slice(s, e);
      },
    };
    const rows: ShardRow[] = [];
    try {
      for await (const rg of readRowGroups(
        { ...handle, file },
        { start: group, end: group + 1, columns: LOADER_COLUMNS },
      ))
        for (const r of rg.rows) rows.push(toRow(r));
    } catch (err) {
      throw err instanceof SourceFileError
        ? err
        : new SourceFileError(uri, `row group ${group}: ${errorMessage(err)}`);
    }
    this.groupsDecoded++;
    return rows;
  }

  /** The rows of row group `group` of shard `shard` (decoded once while it stays in the LRU). */
  rows(shard: number, group: number): Promise<ShardRow[]> {
    return this.groups.get(`${shard}/${group}`, () => this.load(shard, group));
  }

  /** Start loading a group without waiting; errors surface on the later `rows` call. */
  prefetch(shard: number, group: number): void {
    if (this.groups.has(`${shard}/${group}`)) return;
    this.rows(shard, group).catch(() => {});
  }
}
