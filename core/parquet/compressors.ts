// Page codecs for reading and writing parquet: which implementation decodes each codec, and the zstd encoder
// used for our own files. Choices and measurements: docs/decisions.md ("Parquet").
import { gunzipSync } from 'node:zlib';
import { compress as zstdCompress, decompress as zstdDecompress, init as zstdInit } from '@bokuweb/zstd-wasm';
import type { Compressors } from 'hyparquet';
import { decompressZstd as fzstdDecompress, compressors as jsCompressors } from 'hyparquet-compressors';
import { uncompressSync as snappyUncompress } from 'snappy';
import { snappyUncompressInto } from './snappy-into.ts';
import { copyStoredZstd, storedZstdBlocks } from './zstd-stored.ts';

/** zstd level for files we write: 3 is zstd's default, the usual speed/size balance (DuckDB, Arrow use it too). */
export const ZSTD_LEVEL = 3;

let ready: Promise<void> | undefined;

/** Load the zstd wasm module once per process. Every function below needs it. */
export function parquetCodecsReady(): Promise<void> {
  ready ??= zstdInit();
  return ready;
}

/**
 * Decode one zstd page of `outputLength` bytes (from the page header: some writers omit the frame's content size).
 * A page of stored (raw/RLE) blocks only, as writers store image bytes that do not compress, is copied block by
 * block into `output(outputLength)` (fresh memory by default): 2-4x faster than the wasm decoder on 1-8 MB JPEG
 * pages, which copies the page into its heap and back out. Any other page goes to libzstd in wasm (5-7x fzstd on
 * text, and 4x on JPEG pages with compressed blocks), then to fzstd, an independent decoder, if wasm rejects it.
 */
export function decompressZstdPage(
  input: Uint8Array,
  outputLength: number,
  output: (length: number) => Uint8Array = (length) => new Uint8Array(length),
): Uint8Array {
  const blocks = storedZstdBlocks(input, outputLength);
  if (blocks !== undefined) return copyStoredZstd(input, blocks, output(outputLength));
  try {
    return zstdDecompress(input, { defaultHeapSize: Math.max(outputLength, 1) });
  } catch {
    return fzstdDecompress(input);
  }
}

/**
 * Decode one snappy page: natively into fresh memory, or with `output` into `output(outputLength)` by the JS
 * decoder, whose literal runs (all of an image page) are block copies. Recycled reads pass lent memory for large
 * pages: 0.3 ms for a 4 MB JPEG-like page against 1.5-12 ms natively into fresh memory.
 */
export function decompressSnappyPage(
  input: Uint8Array,
  outputLength: number,
  output?: (length: number) => Uint8Array,
): Uint8Array {
  if (output) return snappyUncompressInto(input, output(outputLength));
  return snappyUncompress(input) as Buffer;
}

/**
 * Decompressors handed to hyparquet; each returns the decoded page in memory of its own, which the image values
 * then view. snappy is native (`snappy`, napi-rs with prebuilt binaries): decoded straight into its output, where
 * the wasm decoder copied every page into its heap and out again. zstd: see decompressZstdPage, sized from the page
 * header because some writers omit the frame's content size. gzip uses Node's zlib (native), its Buffer returned as
 * is (a Buffer is a Uint8Array).
 */
export const parquetDecompressors: Compressors = {
  ...jsCompressors,
  SNAPPY: (input: Uint8Array, outputLength: number) => decompressSnappyPage(input, outputLength),
  // One output chunk a byte larger than the page: zlib then never grows its output by 16 KiB chunks and concatenates
  // them (a second copy of the page into fresh memory), and finds the stream's end without a spare chunk.
  GZIP: (input: Uint8Array, outputLength: number) =>
    gunzipSync(input, { chunkSize: Math.max(outputLength + 1, 64 * 1024) }),
  ZSTD: (input: Uint8Array, outputLength: number) => decompressZstdPage(input, outputLength),
};

/** Compress one page with zstd (deterministic: same bytes and level give the same output). */
export function zstdCompressPage(input: Uint8Array): Uint8Array {
  return zstdCompress(input, ZSTD_LEVEL);
}
