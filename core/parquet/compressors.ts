// Page codecs for reading and writing parquet: which implementation decodes each codec, and the zstd encoder
// used for our own files. Choices and measurements: docs/decisions.md ("Parquet").
import { gunzipSync } from 'node:zlib';
import { compress as zstdCompress, decompress as zstdDecompress, init as zstdInit } from '@bokuweb/zstd-wasm';
import type { Compressors } from 'hyparquet';
import { decompressZstd as fzstdDecompress, compressors as jsCompressors } from 'hyparquet-compressors';
import { uncompressSync as snappyUncompress } from 'snappy';

/** zstd level for files we write: 3 is zstd's default, the usual speed/size balance (DuckDB, Arrow use it too). */
export const ZSTD_LEVEL = 3;

let ready: Promise<void> | undefined;

/** Load the zstd wasm module once per process. Every function below needs it. */
export function parquetCodecsReady(): Promise<void> {
  ready ??= zstdInit();
  return ready;
}

/**
 * A page at least this fraction of its decoded size is (nearly) all raw zstd blocks: image bytes, already compressed.
 * fzstd decodes such a frame by copying each raw block into an output of the frame's content size (2-4x faster
 * than the wasm decoder on 1-8 MB JPEG pages, which copies the page into its heap and back); for compressible pages
 * (text, offsets) libzstd in wasm is 5-7x faster than fzstd.
 */
const RAW_PAGE_RATIO = 0.9;

/** zstd page decoding: fzstd for incompressible pages, wasm libzstd otherwise, each the other's fallback. */
export function decompressZstdPage(input: Uint8Array, outputLength: number): Uint8Array {
  const wasm = () => zstdDecompress(input, { defaultHeapSize: Math.max(outputLength, 1) });
  // No output buffer: given one, fzstd 0.1.1 decodes through its window path, ~20x slower on a 70 MB page.
  const js = () => fzstdDecompress(input);
  const [first, second] = input.byteLength >= outputLength * RAW_PAGE_RATIO ? [js, wasm] : [wasm, js];
  try {
    const out = first();
    if (out.byteLength === outputLength) return out;
  } catch {
    // a frame one decoder rejects still gets the other, independent one
  }
  return second();
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
  SNAPPY: (input: Uint8Array) => snappyUncompress(input) as Buffer,
  // One output chunk a byte larger than the page: zlib then never grows its output by 16 KiB chunks and concatenates
  // them (a second copy of the page into fresh memory), and finds the stream's end without a spare chunk.
  GZIP: (input: Uint8Array, outputLength: number) =>
    gunzipSync(input, { chunkSize: Math.max(outputLength + 1, 64 * 1024) }),
  ZSTD: decompressZstdPage,
};

/** Compress one page with zstd (deterministic: same bytes and level give the same output). */
export function zstdCompressPage(input: Uint8Array): Uint8Array {
  return zstdCompress(input, ZSTD_LEVEL);
}
