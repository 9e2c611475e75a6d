// Per-row-group and footer hashes of a shard: the manifest records them at build time, so a reader that fetches one
// row group by a ranged read can check exactly those bytes before it uses or caches them (no whole-file download).
import { createHash } from 'node:crypto';
import { type FileMetaData, parquetMetadata } from 'hyparquet';
import { CorruptShardError } from '../core/errors.ts';
import { chunksByteLength } from '../core/storage/types.ts';

/** What a manifest records for a shard, beyond its whole-file sha256. */
export interface ShardHashes {
  /** sha256 of each row group's bytes: all its column chunks, one contiguous span (`rowGroupSpan`). */
  rowGroupSha256: string[];
  /** The bytes after the last row group (the parquet footer and its length and magic), from `offset` to the end. */
  footer: { offset: number; sha256: string };
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Byte span [start, end) of row group `g`: from its first column chunk (dictionary page first) to its last byte. */
export function rowGroupSpan(metadata: FileMetaData, g: number): { start: number; end: number } {
  let start = Number.POSITIVE_INFINITY;
  let end = 0;
  for (const c of metadata.row_groups[g].columns) {
    const m = c.meta_data;
    if (!m) continue;
    const dict = m.dictionary_page_offset === undefined ? 0 : Number(m.dictionary_page_offset);
    const chunkStart = dict > 0 ? dict : Number(m.data_page_offset);
    start = Math.min(start, chunkStart);
    end = Math.max(end, chunkStart + Number(m.total_compressed_size));
  }
  if (end === 0) return { start: 0, end: 0 };
  return { start, end };
}

/** Where the footer span starts: after the last row group (or the leading magic of a file with none). */
export function footerOffset(metadata: FileMetaData): number {
  let end = 4;
  for (let g = 0; g < metadata.row_groups.length; g++) end = Math.max(end, rowGroupSpan(metadata, g).end);
  return end;
}

/** The hashes of a shard's bytes, as written (deterministic: same bytes, same hashes). */
export function shardHashes(bytes: Uint8Array): ShardHashes {
  const { sha256: _, ...hashes } = shardDigests([bytes]);
  return hashes;
}

/** The last `n` bytes of a file held as chunks, joined (a view when one chunk holds them). */
function tail(chunks: readonly Uint8Array[], n: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = chunks.length - 1, need = n; i >= 0 && need > 0; i--) {
    const c = chunks[i];
    parts.unshift(c.subarray(Math.max(0, c.byteLength - need)));
    need -= c.byteLength;
  }
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

/**
 * The whole-file sha256 and the per-row-group and footer hashes of a shard held as the chunks it was written as, in
 * one pass and without joining them: the footer is parsed from the last chunks (its offsets are the file's).
 */
export function shardDigests(chunks: readonly Uint8Array[]): ShardHashes & { sha256: string } {
  const size = chunksByteLength(chunks);
  const last8 = tail(chunks, 8);
  const metadataLength = size >= 8 ? new DataView(last8.buffer, last8.byteOffset, 8).getUint32(0, true) : 0;
  const metadata = parquetMetadata(tail(chunks, Math.min(size, metadataLength + 8)));
  const spans = metadata.row_groups.map((_, g) => rowGroupSpan(metadata, g));
  const offset = footerOffset(metadata);
  const hasher = new SpanHasher([...spans, { start: offset, end: size }, { start: 0, end: size }]);
  for (const c of chunks) hasher.update(c);
  const digests = hasher.digests();
  const sha256 = digests.pop() as string;
  const footer = { offset, sha256: digests.pop() as string };
  return { rowGroupSha256: digests, footer, sha256 };
}

/** sha256 of several byte spans [start, end) of one stream, fed in order chunk by chunk (one pass over a file). */
export class SpanHasher {
  private readonly hashes;
  private position = 0;

  constructor(private readonly spans: readonly { start: number; end: number }[]) {
    this.hashes = spans.map(() => createHash('sha256'));
  }

  update(chunk: Uint8Array): void {
    const from = this.position;
    const to = from + chunk.byteLength;
    this.spans.forEach((s, i) => {
      const a = Math.max(s.start, from);
      const b = Math.min(s.end, to);
      if (a < b) this.hashes[i].update(chunk.subarray(a - from, b - from));
    });
    this.position = to;
  }

  digests(): string[] {
    return this.hashes.map((h) => h.digest('hex'));
  }
}

/** Throw a CorruptShardError naming the shard and the part unless `bytes` hash to `expected`. */
export function checkBytes(bytes: Uint8Array, expected: string, shardUri: string, part: string): void {
  const actual = sha256Hex(bytes);
  if (actual !== expected)
    throw new CorruptShardError(
      shardUri,
      `${part} has sha256 ${actual.slice(0, 16)}…, the manifest says ${expected.slice(0, 16)}…: the shard is corrupt on storage; restore or rebuild it (\`mixforge verify\` lists every damaged shard)`,
    );
}
