// Reads row groups of a built mixture's shards (local or S3) for the loader: one ranged read per row group, checked
// against the manifest's hash, optionally through the local ShardCache, with a bounded LRU of decoded groups and footers.

import { SourceFileError } from '../../core/errors.ts';
import type { Sample } from '../../core/schema.ts';
import { isS3Uri, joinUri } from '../../core/storage/index.ts';
import type { ManifestShard } from '../../manifests/manifest.ts';
import { toSampleContent } from '../../manifests/shard-format.ts';
import { VerifiedShard } from '../../manifests/verified-shard.ts';
import type { ShardCache } from './shard-cache.ts';

/** The columns the loader reads; `origin` and `key` are skipped. */
export const LOADER_COLUMNS = ['id', 'source', 'images', 'conversations'];

/** A row as the loader keeps it. */
export type ShardRow = Pick<Sample, 'id' | 'source' | 'images' | 'conversations'>;

export type ShardEntry = ManifestShard;

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
  /** Check each row group against the manifest's sha256 (default true; false only to measure its cost). */
  checkRowGroups?: boolean;
}

export class RowGroupSource {
  private readonly footers: PromiseLru<VerifiedShard>;
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

  /** The shard opened with its footer checked against the manifest, and its layout against the loader's. */
  private footer(shard: number): Promise<VerifiedShard> {
    return this.footers.get(String(shard), async () => {
      const entry = this.shards[shard];
      const verified = await VerifiedShard.open(this.root, entry);
      const { handle, uri } = verified;
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
      return verified;
    });
  }

  /**
   * One ranged read of the whole row group, checked against the manifest's hash before the cache keeps it or the
   * decoder sees it (the group's origin and key columns come along: a few bytes a row, and what makes one hash
   * cover exactly what is read).
   */
  private async load(shard: number, group: number): Promise<ShardRow[]> {
    const verified = await this.footer(shard);
    const cache = this.opts.cache;
    const counted = (fetch: () => Promise<Uint8Array>) => async () => {
      const b = await fetch();
      this.bytesFetched += b.byteLength;
      return b;
    };
    const check = this.opts.checkRowGroups ?? true;
    const bytes = await verified.groupBytes(group, check, (key, fetch, verify) => {
      if (cache && isS3Uri(verified.uri)) return cache.rowGroupBytes(key, counted(fetch), verify);
      return counted(fetch)().then((b) => {
        verify(b);
        return b;
      });
    });
    const rows = (await verified.decode(group, bytes, LOADER_COLUMNS)).map(toSampleContent);
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
