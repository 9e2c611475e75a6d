// zstd frames made only of stored (raw) and RLE blocks, as a writer emits for incompressible data (image bytes),
// decoded by copying into memory the caller gives: recycled reads decode such pages without fresh memory.
// Format: RFC 8878, section 3.1.1. Anything else (a compressed block, a checksum, a dictionary) is left to libzstd.

const FRAME_MAGIC = 0xfd2fb528;
const BLOCK_RAW = 0;
const BLOCK_RLE = 1;

/** One block to copy: `length` bytes from input[`from`…] (raw), or input[`from`] repeated (RLE). */
interface StoredBlock {
  rle: boolean;
  from: number;
  length: number;
}

/**
 * The blocks of `input` when it is one or more zstd frames holding only raw and RLE blocks that decode to exactly
 * `outputLength` bytes and end exactly at the end of the input; undefined otherwise (the caller then decodes the
 * page with a full decoder, which also reports what is wrong with a malformed one).
 */
export function storedZstdBlocks(input: Uint8Array, outputLength: number): StoredBlock[] | undefined {
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const blocks: StoredBlock[] = [];
  let pos = 0;
  let total = 0;
  while (pos < input.byteLength) {
    if (pos + 5 > input.byteLength || view.getUint32(pos, true) !== FRAME_MAGIC) return undefined;
    const descriptor = input[pos + 4];
    const contentSizeFlag = descriptor >> 6;
    const singleSegment = (descriptor >> 5) & 1;
    // Reserved bit, content checksum, dictionary id: leave those frames to libzstd.
    if (descriptor & 0b1111) return undefined;
    const contentSizeBytes = [singleSegment, 2, 4, 8][contentSizeFlag];
    pos += 5 + (singleSegment ? 0 : 1);
    let contentSize: number | undefined;
    if (contentSizeBytes > 0) {
      if (pos + contentSizeBytes > input.byteLength) return undefined;
      if (contentSizeBytes === 1) contentSize = input[pos];
      else if (contentSizeBytes === 2) contentSize = view.getUint16(pos, true) + 256;
      else if (contentSizeBytes === 4) contentSize = view.getUint32(pos, true);
      else contentSize = Number(view.getBigUint64(pos, true));
      pos += contentSizeBytes;
    }
    const frameStart = total;
    for (let last = false; !last; ) {
      if (pos + 3 > input.byteLength) return undefined;
      const header = input[pos] | (input[pos + 1] << 8) | (input[pos + 2] << 16);
      pos += 3;
      last = (header & 1) === 1;
      const type = (header >> 1) & 3;
      const length = header >>> 3;
      if (type === BLOCK_RAW) {
        if (pos + length > input.byteLength) return undefined;
        blocks.push({ rle: false, from: pos, length });
        pos += length;
      } else if (type === BLOCK_RLE) {
        if (pos + 1 > input.byteLength) return undefined;
        blocks.push({ rle: true, from: pos, length });
        pos += 1;
      } else return undefined;
      total += length;
      if (total > outputLength) return undefined;
    }
    if (contentSize !== undefined && total - frameStart !== contentSize) return undefined;
  }
  return total === outputLength ? blocks : undefined;
}

/** Copy the blocks `storedZstdBlocks` found into `output` (exactly the page's decoded size). */
export function copyStoredZstd(input: Uint8Array, blocks: StoredBlock[], output: Uint8Array): Uint8Array {
  let at = 0;
  for (const b of blocks) {
    if (b.rle) output.fill(input[b.from], at, at + b.length);
    else output.set(input.subarray(b.from, b.from + b.length), at);
    at += b.length;
  }
  return output;
}
