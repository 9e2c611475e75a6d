import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { compress as wasmCompress } from '@bokuweb/zstd-wasm';
import fc from 'fast-check';
import { decompressZstd as fzstdDecompress } from 'hyparquet-compressors';
import { compressSync as snappyCompress } from 'snappy';
import {
  decompressSnappyPage,
  decompressZstdPage,
  parquetCodecsReady,
} from '../../core/parquet/compressors.ts';
import { snappyUncompressInto } from '../../core/parquet/snappy-into.ts';
import { copyStoredZstd, storedZstdBlocks } from '../../core/parquet/zstd-stored.ts';

const MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

const concat = (parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

interface Block {
  rle: boolean;
  bytes: Uint8Array;
}

/** A zstd frame of raw and RLE blocks, built by hand (RFC 8878), with or without its content size. */
function storedFrame(blocks: Block[], withContentSize: boolean, checksum = false): Uint8Array {
  const size = blocks.reduce((n, b) => n + b.bytes.length, 0);
  // Content size in 4 bytes (flag 2) or none (flag 0, with a 128 KiB window descriptor).
  const header = withContentSize
    ? [
        ...MAGIC,
        (2 << 6) | (checksum ? 4 : 0),
        7 << 3,
        size & 0xff,
        (size >> 8) & 0xff,
        (size >> 16) & 0xff,
        size >>> 24,
      ]
    : [...MAGIC, checksum ? 4 : 0, 7 << 3];
  const parts: Uint8Array[] = [new Uint8Array(header)];
  blocks.forEach((b, i) => {
    const h = ((b.bytes.length << 3) | ((b.rle ? 1 : 0) << 1) | (i === blocks.length - 1 ? 1 : 0)) >>> 0;
    parts.push(new Uint8Array([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff]));
    parts.push(b.rle ? b.bytes.subarray(0, 1) : b.bytes);
  });
  if (checksum) parts.push(new Uint8Array(4));
  return concat(parts);
}

function noise(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

const block = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 300 }).map((bytes) => ({ rle: false, bytes })),
  fc
    .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 300 }))
    .map(([v, n]) => ({ rle: true, bytes: new Uint8Array(n).fill(v) })),
);

describe('core/parquet zstd page decoding', () => {
  before(() => parquetCodecsReady());

  it('stored-block frames (raw, RLE, with and without content size, several frames): copied as fzstd decodes them', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.array(block, { minLength: 1, maxLength: 5 }), fc.boolean()), {
          minLength: 1,
          maxLength: 3,
        }),
        (frames) => {
          const input = concat(frames.map(([blocks, cs]) => storedFrame(blocks, cs)));
          const expected = concat(frames.flatMap(([blocks]) => blocks.map((b) => b.bytes)));
          assert.deepEqual(fzstdDecompress(input), expected);
          const found = storedZstdBlocks(input, expected.length);
          assert.ok(found);
          assert.deepEqual(copyStoredZstd(input, found, new Uint8Array(expected.length)), expected);
          // Any other size than the decoded one is not this page.
          assert.equal(storedZstdBlocks(input, expected.length + 1), undefined);
          if (expected.length > 0) assert.equal(storedZstdBlocks(input, expected.length - 1), undefined);
        },
      ),
    );
  });

  it('leaves to libzstd what is not stored blocks only: compressed blocks, checksums, truncation, other data', () => {
    const text = new TextEncoder().encode('a caption that repeats. '.repeat(2000));
    assert.equal(storedZstdBlocks(wasmCompress(text, 3), text.length), undefined);
    const bytes = noise(5000, 1);
    const blocks = [{ rle: false, bytes }];
    assert.equal(storedZstdBlocks(storedFrame(blocks, true, true), bytes.length), undefined);
    const frame = storedFrame(blocks, true);
    assert.ok(storedZstdBlocks(frame, bytes.length));
    assert.equal(storedZstdBlocks(frame.subarray(0, frame.length - 1), bytes.length), undefined);
    assert.equal(storedZstdBlocks(concat([frame, new Uint8Array([1])]), bytes.length), undefined);
    assert.equal(storedZstdBlocks(bytes, bytes.length), undefined);
    // A content size that disagrees with the blocks.
    const lying = frame.slice();
    lying[6] ^= 1;
    assert.equal(storedZstdBlocks(lying, bytes.length), undefined);
  });

  it('pages: stored blocks copied into the memory given, others through libzstd; exact bytes either way', () => {
    const image = noise(3 << 20, 7);
    const text = new TextEncoder().encode('The image shows overlapping rectangles. '.repeat(50_000));
    const given: number[] = [];
    const output = (length: number) => {
      given.push(length);
      return new Uint8Array(length);
    };
    // libzstd stores incompressible input as raw blocks: copied into the memory given.
    assert.deepEqual(decompressZstdPage(wasmCompress(image, 3), image.length, output), image);
    assert.deepEqual(given, [image.length]);
    // Compressed blocks: decoded by libzstd, the memory given is not used.
    assert.deepEqual(decompressZstdPage(wasmCompress(text, 3), text.length, output), text);
    const mixed = concat([image.subarray(0, 1 << 20), text]);
    assert.deepEqual(decompressZstdPage(wasmCompress(mixed, 3), mixed.length, output), mixed);
    assert.deepEqual(given, [image.length]);
    // No content size in the frame (some writers stream pages): sized from the page header.
    const chunks = Array.from({ length: 24 }, (_, i) => ({
      rle: false,
      bytes: image.subarray(i << 17, (i + 1) << 17),
    }));
    assert.deepEqual(decompressZstdPage(storedFrame(chunks, false), image.length), image);
    assert.equal(decompressZstdPage(new Uint8Array(0), 0).length, 0);
  });

  it('falls back to fzstd for valid pages the wasm build rejects: two frames, a skippable frame first', () => {
    const text = new TextEncoder().encode('a caption that repeats. '.repeat(4000));
    const frame = wasmCompress(text, 3);
    // The wasm build sizes its output from the first frame's content size, too small for two frames.
    assert.deepEqual(decompressZstdPage(concat([frame, frame]), 2 * text.length), concat([text, text]));
    const skippable = new Uint8Array([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]);
    assert.deepEqual(decompressZstdPage(concat([skippable, frame]), text.length), text);
  });

  it('a page neither decoder accepts fails', () => {
    const page = noise(4096, 3);
    assert.throws(() => decompressZstdPage(page, page.length));
    const frame = wasmCompress(new TextEncoder().encode('caption '.repeat(5000)), 3);
    assert.throws(() => decompressZstdPage(frame.subarray(0, frame.length - 10), 40_000));
  });
});

describe('core/parquet snappy pages into given memory', () => {
  // Runs of noise (literals, short and long), repeated patterns (overlapping copies) and repeated text (copies).
  const part = fc.oneof(
    fc.integer({ min: 0, max: 70_000 }).map((n) => noise(n, n)),
    fc
      .tuple(fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 5000 }))
      .map(([pattern, times]) => concat(Array.from({ length: times }, () => pattern))),
    fc.string({ maxLength: 40 }).map((t) => new TextEncoder().encode(t.repeat(50))),
  );

  it('decodes what the native encoder writes, byte for byte as the native decoder', () => {
    fc.assert(
      fc.property(fc.array(part, { maxLength: 6 }), (parts) => {
        const raw = concat(parts);
        const page = new Uint8Array(snappyCompress(Buffer.from(raw)));
        const out = snappyUncompressInto(page, new Uint8Array(raw.length));
        assert.deepEqual(out, raw);
        assert.deepEqual(new Uint8Array(decompressSnappyPage(page, raw.length)), raw);
      }),
      { numRuns: 60 },
    );
  });

  it('an image page (literal runs) lands in the memory given', () => {
    const image = noise(3 << 20, 5);
    const given = new Uint8Array(image.length);
    const page = new Uint8Array(snappyCompress(Buffer.from(image)));
    assert.equal(
      decompressSnappyPage(page, image.length, () => given),
      given,
    );
    assert.deepEqual(given, image);
  });

  it('rejects a page of another length, truncated or with a copy from before the start', () => {
    const text = new TextEncoder().encode('a caption that repeats. '.repeat(2000));
    const page = new Uint8Array(snappyCompress(Buffer.from(text)));
    assert.throws(() => snappyUncompressInto(page, new Uint8Array(text.length + 1)), /expected/);
    assert.throws(() => snappyUncompressInto(page.subarray(0, page.length - 3), new Uint8Array(text.length)));
    // Length 8, then a copy (tag 1, length 4) with offset 1 before anything was written.
    assert.throws(
      () => snappyUncompressInto(new Uint8Array([8, 0b01, 1]), new Uint8Array(8)),
      /before the start/,
    );
    assert.throws(() => snappyUncompressInto(new Uint8Array([]), new Uint8Array(0)), /preamble/);
  });
});
