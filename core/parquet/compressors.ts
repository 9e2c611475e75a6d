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
 * Decompressors handed to hyparquet; each returns the decoded page in memory of its own, which the image values
 * then view. snappy is native (`snappy`, napi-rs with prebuilt binaries): decoded straight into its output, where
 * the wasm decoder copied every page into its heap and out again. zstd goes through the wasm build of libzstd
 * (1.3–1.5x faster than the pure-JS fzstd on image columns), sized from the page header because some writers omit
 * the frame's content size; fzstd stays as the fallback so a frame the wasm path rejects still gets a second,
 * independent decoder. gzip uses Node's zlib (native), its Buffer returned as is (a Buffer is a Uint8Array).
 */
export const parquetDecompressors: Compressors = {
  ...jsCompressors,
  SNAPPY: (input: Uint8Array) => snappyUncompress(input) as Buffer,
  // One output chunk a byte larger than the page: zlib then never grows its output by 16 KiB chunks and concatenates
  // them (a second copy of the page into fresh memory), and finds the stream's end without a spare chunk.
  GZIP: (input: Uint8Array, outputLength: number) =>
    gunzipSync(input, { chunkSize: Math.max(outputLength + 1, 64 * 1024) }),
  ZSTD: (input: Uint8Array, outputLength: number) => {
    try {
      return zstdDecompress(input, { defaultHeapSize: Math.max(outputLength, 1) });
    } catch {
      return fzstdDecompress(input);
    }
  },
};

/** Compress one page with zstd (deterministic: same bytes and level give the same output). */
export function zstdCompressPage(input: Uint8Array): Uint8Array {
  return zstdCompress(input, ZSTD_LEVEL);
}
