// Reads parquet files of any Storage URI (local or S3) through ranged reads: the footer once, then one row group at
// a time and only the requested columns, so memory follows the row group, not the file.
import {
  type AsyncBuffer,
  type Compressors,
  type FileMetaData,
  parquetMetadataAsync,
  parquetReadObjects,
  parquetSchema,
  type SchemaTree,
} from 'hyparquet';
import { errorMessage, SourceFileError } from '../errors.ts';
import { storageFor } from '../storage/index.ts';
import {
  decompressSnappyPage,
  decompressZstdPage,
  parquetCodecsReady,
  parquetDecompressors,
} from './compressors.ts';
import { detachRows, GroupMemory, LARGE_BUFFER_BYTES } from './group-memory.ts';

/** Bytes fetched from the end of the file on open; covers the footer of typical files in one request. */
const FOOTER_FETCH = 256 * 1024;

export interface RowGroupInfo {
  index: number;
  /** Index in the file of the group's first row. */
  rowStart: number;
  numRows: number;
  /** Compressed bytes of all its column chunks. */
  compressedBytes: number;
}

export interface ParquetFileHandle {
  uri: string;
  size: number;
  metadata: FileMetaData;
  /** Top-level column names, in file order. */
  columns: string[];
  /** The schema tree, to check column shapes before reading. */
  schema: SchemaTree;
  rowGroups: RowGroupInfo[];
  numRows: number;
  file: AsyncBuffer;
}

/** Storage returns Buffers that may be views into a shared pool: hand hyparquet exactly the bytes asked for. */
function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer
    ? b.buffer
    : (b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
}

/**
 * An AsyncBuffer over `storage.readRange`. The tail fetched for the footer is kept, so parsing the metadata costs
 * one request; every other slice is one ranged read.
 */
export function storageAsyncBuffer(uri: string, size: number): AsyncBuffer {
  const storage = storageFor(uri);
  const tailStart = Math.max(0, size - FOOTER_FETCH);
  let tail: Promise<Uint8Array> | undefined;
  return {
    byteLength: size,
    async slice(start: number, end = size): Promise<ArrayBuffer> {
      if (start >= tailStart) {
        tail ??= storage.readRange(uri, tailStart, size);
        const t = await tail;
        return toArrayBuffer(t.subarray(start - tailStart, end - tailStart));
      }
      const bytes = await storage.readRange(uri, start, end);
      if (bytes.byteLength !== end - start) {
        throw new Error(`short read: wanted bytes [${start}, ${end}), got ${bytes.byteLength}`);
      }
      return toArrayBuffer(bytes);
    },
  };
}

/**
 * The file as one row group reads it: compressed column chunks of at least LARGE_BUFFER_BYTES (hyparquet fetches
 * each such chunk by its exact range) are read into the group's recycled memory, since nothing views them once their
 * pages are decompressed; uncompressed ones, whose binary values stay views into the chunk, into `lent` memory when
 * the caller lends it (else fresh); the rest as `file` reads them.
 */
function groupAsyncBuffer(
  handle: ParquetFileHandle,
  group: number,
  memory: GroupMemory,
  lent: GroupMemory | undefined,
): AsyncBuffer {
  const storage = storageFor(handle.uri);
  const chunkMemory = new Map<number, GroupMemory>();
  for (const c of handle.metadata.row_groups[group].columns) {
    const meta = c.meta_data;
    const into = meta?.codec === 'UNCOMPRESSED' ? lent : memory;
    if (meta && into) chunkMemory.set(Number(meta.dictionary_page_offset || meta.data_page_offset), into);
  }
  return {
    byteLength: handle.size,
    async slice(start: number, end = handle.size): Promise<ArrayBuffer> {
      const target = chunkMemory.get(start);
      if (end - start < LARGE_BUFFER_BYTES || end > handle.size || target === undefined)
        return handle.file.slice(start, end);
      const into = target.take(end - start);
      const bytes = await storage.readRange(handle.uri, start, end, new Uint8Array(into));
      if (bytes.byteLength !== end - start) {
        throw new Error(`short read: wanted bytes [${start}, ${end}), got ${bytes.byteLength}`);
      }
      return bytes.buffer === into ? into : toArrayBuffer(bytes);
    },
  };
}

/**
 * With recycling: large snappy pages, and large zstd pages of stored blocks only (image bytes, which zstd cannot
 * shrink), are decoded into the group's lent memory instead of fresh memory, as uncompressed chunks are read into
 * it; other pages as usual.
 */
function lendingDecompressors(lent: GroupMemory): Compressors {
  const output = (length: number) =>
    length >= LARGE_BUFFER_BYTES ? new Uint8Array(lent.take(length)) : new Uint8Array(length);
  return {
    ...parquetDecompressors,
    ZSTD: (input: Uint8Array, outputLength: number) => decompressZstdPage(input, outputLength, output),
    SNAPPY: (input: Uint8Array, outputLength: number) =>
      decompressSnappyPage(input, outputLength, outputLength >= LARGE_BUFFER_BYTES ? output : undefined),
  };
}

/** Open a parquet file: stat it (unless the size is known), read and parse the footer once. */
export async function openParquet(uri: string, knownSize?: number): Promise<ParquetFileHandle> {
  await parquetCodecsReady();
  let size = knownSize;
  if (size === undefined) {
    const info = await storageFor(uri).stat(uri);
    if (!info) throw new SourceFileError(uri, 'no such file or object');
    size = info.size;
  }
  if (size < 12)
    throw new SourceFileError(uri, `not a parquet file (${size} bytes, too small for magic and footer)`);
  const file = storageAsyncBuffer(uri, size);
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(file, { initialFetchSize: FOOTER_FETCH });
  } catch (err) {
    throw new SourceFileError(uri, `cannot read parquet footer: ${errorMessage(err)}`, { cause: err });
  }
  const schema = parquetSchema(metadata);
  const rowGroups: RowGroupInfo[] = [];
  let rowStart = 0;
  metadata.row_groups.forEach((rg, index) => {
    const numRows = Number(rg.num_rows);
    const compressedBytes = rg.columns.reduce(
      (s, c) => s + Number(c.meta_data?.total_compressed_size ?? 0),
      0,
    );
    rowGroups.push({ index, rowStart, numRows, compressedBytes });
    rowStart += numRows;
  });
  return {
    uri,
    size,
    metadata,
    columns: schema.children.map((c) => c.element.name),
    schema,
    rowGroups,
    numRows: rowStart,
    file,
  };
}

export interface RowGroupRows {
  group: RowGroupInfo;
  /** One object per row with the requested columns (binary as Uint8Array, strings as string, nulls as null). */
  rows: Record<string, unknown>[];
  /**
   * With `recycle`: hands the memory the rows' binary values view back for a later group to be read into. Call it
   * once no value of `rows` is used any more; never called, that memory is simply left to the GC.
   */
  release?: () => void;
}

/**
 * Stream row groups [start, end) of an opened file, one group at a time, reading only `columns`.
 * A group that cannot be decoded fails with a SourceFileError naming the file and the group.
 * `recycle`: large uncompressed chunks, large snappy pages, and large zstd pages of stored blocks (image bytes), are
 * read or decoded into recycled memory that each group's `release` hands back (only memory released is reused;
 * without it every such chunk is fresh memory, which costs an uncompressed read about half its CPU in page zeroing
 * and the GC runs it triggers: docs/benchmarks.md, "Parquet reader").
 */
export async function* readRowGroups(
  handle: ParquetFileHandle,
  range: { start: number; end: number; columns: string[]; recycle?: boolean },
): AsyncGenerator<RowGroupRows> {
  const present = new Set(handle.columns);
  const columns = range.columns.filter((c) => present.has(c));
  const end = Math.min(range.end, handle.rowGroups.length);
  for (let g = Math.max(0, range.start); g < end; g++) {
    const group = handle.rowGroups[g];
    if (group.numRows === 0) continue;
    let rows: Record<string, unknown>[];
    const memory = new GroupMemory();
    const lent = range.recycle ? new GroupMemory() : undefined;
    try {
      rows = await parquetReadObjects({
        file: groupAsyncBuffer(handle, g, memory, lent),
        metadata: handle.metadata,
        columns,
        rowStart: group.rowStart,
        rowEnd: group.rowStart + group.numRows,
        compressors: lent ? lendingDecompressors(lent) : parquetDecompressors,
        // Binary columns (image bytes) stay bytes; only columns annotated as strings are decoded as UTF-8.
        utf8: false,
      });
      // Values still viewing the recycled chunks (none for V1 pages; V2 pages may store values uncompressed inside a
      // compressed chunk) become copies before the memory serves the next group.
      detachRows(rows, memory);
      memory.release();
    } catch (err) {
      memory.discard();
      lent?.discard();
      throw new SourceFileError(
        handle.uri,
        `cannot decode row group ${g} (rows ${group.rowStart}–${group.rowStart + group.numRows - 1}): ${errorMessage(err)}`,
        { cause: err },
      );
    }
    if (rows.length !== group.numRows) {
      throw new SourceFileError(
        handle.uri,
        `row group ${g}: decoded ${rows.length} rows, footer says ${group.numRows}`,
      );
    }
    yield lent !== undefined && lent.size > 0
      ? { group, rows, release: () => lent.release() }
      : { group, rows };
  }
}
