// A snappy decoder that writes into memory the caller gives, so recycled reads decode large pages (image bytes,
// which snappy stores as literal runs) without fresh memory. Literals and non-overlapping copies are block copies
// (`set`, `copyWithin`); short runs and overlapping copies (offset < length, a repeated pattern) go byte by byte.
// Format: https://github.com/google/snappy/blob/main/format_description.txt

/** Runs shorter than this are copied byte by byte: a typed-array call costs more than the loop (text pages). */
const SHORT = 32;

/** Decode the snappy block `input` into `output`, which must be exactly its decoded length; returns `output`. */
export function snappyUncompressInto(input: Uint8Array, output: Uint8Array): Uint8Array {
  const end = input.byteLength;
  let pos = 0;
  // Preamble: the decoded length as a little-endian varint.
  let length = 0;
  for (let shift = 0; ; shift += 7) {
    if (pos >= end || shift > 28) throw new Error('snappy: bad length preamble');
    const c = input[pos++];
    length += (c & 0x7f) * 2 ** shift;
    if (c < 0x80) break;
  }
  if (length !== output.byteLength) {
    throw new Error(`snappy: page decodes to ${length} bytes, expected ${output.byteLength}`);
  }
  let out = 0;
  while (pos < end) {
    const tag = input[pos++];
    const type = tag & 3;
    if (type === 0) {
      let len = tag >>> 2;
      if (len >= 60) {
        const bytes = len - 59;
        if (pos + bytes > end) throw new Error('snappy: truncated literal length');
        len = 0;
        for (let i = bytes - 1; i >= 0; i--) len = len * 256 + input[pos + i];
        pos += bytes;
      }
      len += 1;
      if (pos + len > end || out + len > length) throw new Error('snappy: literal past the end');
      if (len < SHORT) for (let i = 0; i < len; i++) output[out + i] = input[pos + i];
      else output.set(input.subarray(pos, pos + len), out);
      pos += len;
      out += len;
      continue;
    }
    let len: number;
    let offset: number;
    if (type === 1) {
      if (pos + 1 > end) throw new Error('snappy: truncated copy');
      len = ((tag >>> 2) & 7) + 4;
      offset = ((tag >>> 5) << 8) | input[pos];
      pos += 1;
    } else if (type === 2) {
      if (pos + 2 > end) throw new Error('snappy: truncated copy');
      len = (tag >>> 2) + 1;
      offset = input[pos] | (input[pos + 1] << 8);
      pos += 2;
    } else {
      if (pos + 4 > end) throw new Error('snappy: truncated copy');
      len = (tag >>> 2) + 1;
      offset = (input[pos] | (input[pos + 1] << 8) | (input[pos + 2] << 16) | (input[pos + 3] << 24)) >>> 0;
      pos += 4;
    }
    if (offset === 0 || offset > out) throw new Error('snappy: copy from before the start');
    if (out + len > length) throw new Error('snappy: copy past the end');
    if (offset >= len && len >= SHORT) output.copyWithin(out, out - offset, out - offset + len);
    else for (let i = 0; i < len; i++) output[out + i] = output[out + i - offset];
    out += len;
  }
  if (out !== length) throw new Error('snappy: input ends before the page does');
  return output;
}
