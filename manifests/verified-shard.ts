// Reads a built shard so that every byte used has been checked against the manifest first: the footer when the shard
// is opened, each row group right after its ranged read (before a cache stores it or a decoder sees it).
import { createHash } from 'node:crypto';
import { CorruptShardError, errorMessage, SourceFileError } from '../core/errors.ts';
import { openParquet, type ParquetFileHandle, readRowGroups } from '../core/parquet/read.ts';
import { SAMPLE_PARQUET_FIELDS } from '../core/parquet/sample-schema.ts';
import type { Sample } from '../core/schema.ts';
import { joinUri, storageFor } from '../core/storage/index.ts';
import type { ManifestShard } from './manifest.ts';
import { toSample } from './shard-format.ts';
import { checkBytes, footerOffset, rowGroupSpan } from './shard-integrity.ts';

/** Fetches a row group's bytes, possibly through a cache: `verify` must pass before bytes are kept or returned. */
export type GroupFetcher = (
  key: string,
  fetch: () => Promise<Uint8Array>,
  verify: (bytes: Uint8Array) => void,
) => Promise<Uint8Array>;

const direct: GroupFetcher = async (_key, fetch, verify) => {
  const bytes = await fetch();
  verify(bytes);
  return bytes;
};

async function wholeFileSha256(uri: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of await storageFor(uri).createReadStream(uri)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export class VerifiedShard {
  private constructor(
    readonly uri: string,
    readonly entry: ManifestShard,
    readonly handle: ParquetFileHandle,
  ) {}

  /**
   * Open a shard of the manifest rooted at `root` and check its footer. A manifest without per-row-group hashes
   * (built before they existed) gets the whole file hashed instead: a full read, once per open.
   */
  static async open(root: string, entry: ManifestShard): Promise<VerifiedShard> {
    const uri = joinUri(root, entry.path);
    const footer = entry.footer;
    let handle: ParquetFileHandle;
    try {
      handle = await openParquet(uri, entry.bytes);
    } catch (err) {
      // A corrupt footer usually fails to parse: say it is corrupt rather than "not parquet".
      if (footer && footer.offset < entry.bytes) {
        const bytes = await storageFor(uri).readRange(uri, footer.offset, entry.bytes);
        checkBytes(bytes, footer.sha256, uri, 'the footer');
      }
      throw err;
    }
    if (footer && entry.rowGroupSha256) {
      // The footer's bytes first (they do not depend on what was parsed), then the layout they describe.
      const tail = new Uint8Array(await handle.file.slice(footer.offset, entry.bytes));
      checkBytes(tail, footer.sha256, uri, 'the footer');
      if (footerOffset(handle.metadata) !== footer.offset)
        throw new CorruptShardError(
          uri,
          `the footer starts at byte ${footerOffset(handle.metadata)}, the manifest says ${footer.offset}: not the shard the manifest lists`,
        );
      if (handle.rowGroups.length !== entry.rowGroupSha256.length)
        throw new CorruptShardError(
          uri,
          `${handle.rowGroups.length} row groups, the manifest lists ${entry.rowGroupSha256.length}`,
        );
    } else {
      const sha = await wholeFileSha256(uri);
      if (sha !== entry.sha256)
        throw new CorruptShardError(
          uri,
          `sha256 ${sha.slice(0, 16)}…, the manifest says ${entry.sha256.slice(0, 16)}…: the shard is corrupt on storage; restore or rebuild it (\`mixforge verify\` lists every damaged shard)`,
        );
    }
    return new VerifiedShard(uri, entry, handle);
  }

  /** Byte span [start, end) of row group g (all its column chunks). */
  span(g: number): { start: number; end: number } {
    return rowGroupSpan(this.handle.metadata, g);
  }

  /** True when each row group is checked on read (else the whole file was checked at open). */
  get checksGroups(): boolean {
    return this.entry.rowGroupSha256 !== undefined;
  }

  /**
   * The checked bytes of row group g, fetched by one ranged read, through `via` (a cache) when given. A cache key is
   * the group's own sha256 (content-addressed), or for older manifests the shard's sha256 and the group number.
   * `checkHash` false skips the sha256 (only to measure its cost); the byte count is checked either way.
   */
  async groupBytes(g: number, checkHash = true, via: GroupFetcher = direct): Promise<Uint8Array> {
    const { start, end } = this.span(g);
    const expected = checkHash ? this.entry.rowGroupSha256?.[g] : undefined;
    const fetch = () => storageFor(this.uri).readRange(this.uri, start, end);
    const verify = (bytes: Uint8Array) => {
      if (bytes.byteLength !== end - start)
        throw new CorruptShardError(
          this.uri,
          `row group ${g}: read ${bytes.byteLength} bytes, expected ${end - start} (is the object truncated?)`,
        );
      if (expected !== undefined)
        checkBytes(bytes, expected, this.uri, `row group ${g} (bytes ${start}–${end - 1})`);
    };
    return via(this.entry.rowGroupSha256?.[g] ?? `${this.entry.sha256}-${g}`, fetch, verify);
  }

  /** Decode `columns` of row group g from its checked bytes; no other byte of the file is read. */
  async decode(g: number, bytes: Uint8Array, columns: string[]): Promise<Record<string, unknown>[]> {
    const { start, end } = this.span(g);
    const inner = this.handle.file;
    const uri = this.uri;
    const checked = this.checksGroups;
    const file = {
      byteLength: inner.byteLength,
      slice(s: number, e = inner.byteLength) {
        if (s >= start && e <= end) {
          const view = bytes.subarray(s - start, e - start);
          return view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength) as ArrayBuffer;
        }
        // Never expected (a group's pages lie in its span); with per-group hashes, unchecked bytes are refused.
        if (checked)
          throw new SourceFileError(uri, `row group ${g}: read of bytes [${s}, ${e}) outside the group`);
        return inner.slice(s, e);
      },
    };
    const rows: Record<string, unknown>[] = [];
    try {
      for await (const rg of readRowGroups({ ...this.handle, file }, { start: g, end: g + 1, columns }))
        rows.push(...rg.rows);
    } catch (err) {
      throw err instanceof SourceFileError
        ? err
        : new SourceFileError(uri, `row group ${g}: ${errorMessage(err)}`);
    }
    return rows;
  }
}

const ALL_COLUMNS = SAMPLE_PARQUET_FIELDS.map((f) => f.name);

/**
 * The samples of one shard of a manifest rooted at `root`, in stored order, one row group in memory at a time, each
 * group checked against the manifest before any of its samples is yielded (exports, inspect, report).
 */
export async function* verifiedShardSamples(root: string, entry: ManifestShard): AsyncGenerator<Sample> {
  const shard = await VerifiedShard.open(root, entry);
  for (let g = 0; g < shard.handle.rowGroups.length; g++) {
    const rows = await shard.decode(g, await shard.groupBytes(g), ALL_COLUMNS);
    for (const r of rows) yield toSample(r);
  }
}
