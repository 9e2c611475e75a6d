// Perceptual image hashes for near-duplicate detection: a 64-bit DCT hash (pHash) of the image's 32×32 greyscale
// thumbnail, decoded with shrink-on-load. Near-identical pictures (resized, re-encoded, slightly cropped, greyscale, small overlays) differ in a
// few bits; unrelated ones in about half. Deterministic for a given libvips decoder (the rest is
// plain arithmetic here).
import sharp, { type SharpOptions } from 'sharp';

const SIDE = 32;
const LOW = 8;

/** cos((2x + 1) u π / 2N) for the 32-point DCT-II, computed once. */
const COS = (() => {
  const t = new Float64Array(SIDE * SIDE);
  for (let u = 0; u < SIDE; u++)
    for (let x = 0; x < SIDE; x++) t[u * SIDE + x] = Math.cos(((2 * x + 1) * u * Math.PI) / (2 * SIDE));
  return t;
})();

/**
 * The 8×8 lowest frequencies of the 2-D DCT-II of a 32×32 greyscale image (row-major, 64 values). Only the
 * coefficients the hash uses are computed: rows first (8 per row), then columns.
 */
export function lowFrequencyDct(pixels: Uint8Array): Float64Array {
  if (pixels.length !== SIDE * SIDE)
    throw new RangeError(`expected ${SIDE * SIDE} pixels, got ${pixels.length}`);
  const rows = new Float64Array(SIDE * LOW);
  for (let y = 0; y < SIDE; y++)
    for (let u = 0; u < LOW; u++) {
      let s = 0;
      for (let x = 0; x < SIDE; x++) s += pixels[y * SIDE + x] * COS[u * SIDE + x];
      rows[y * LOW + u] = s;
    }
  const out = new Float64Array(LOW * LOW);
  for (let v = 0; v < LOW; v++)
    for (let u = 0; u < LOW; u++) {
      let s = 0;
      for (let y = 0; y < SIDE; y++) s += rows[y * LOW + u] * COS[v * SIDE + y];
      out[v * LOW + u] = s;
    }
  return out;
}

/** Bit i (MSB first) is set when low-frequency coefficient i is above the median of the 63 non-DC ones. */
export function hashFromDct(coefficients: Float64Array): bigint {
  const ac = Array.from(coefficients.subarray(1)).sort((a, b) => a - b);
  const median = ac[31];
  let h = 0n;
  for (let i = 0; i < LOW * LOW; i++) h = (h << 1n) | (coefficients[i] > median ? 1n : 0n);
  return h;
}

/**
 * The 32×32 greyscale thumbnail the hash is computed from (EXIF orientation applied, alpha flattened onto white).
 * libvips shrinks JPEG and WebP while decoding them (shrink-on-load), so this costs about one plain decode: ingest
 * uses it as its decode check when the hash is wanted (every entropy-coded block is still decoded, and `input`
 * carries the same failOn and pixel limit), so the hash needs no second decode.
 */
export async function hashThumbnail(bytes: Uint8Array, input: SharpOptions = {}): Promise<Uint8Array> {
  const { data } = await sharp(bytes, input)
    .autoOrient()
    .flatten({ background: '#ffffff' })
    .greyscale()
    .resize(SIDE, SIDE, { fit: 'fill', kernel: 'cubic' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** The 64-bit perceptual hash of an encoded image. */
export async function perceptualHash(bytes: Uint8Array, input: SharpOptions = {}): Promise<bigint> {
  return hashFromDct(lowFrequencyDct(await hashThumbnail(bytes, input)));
}

/** The hash as 16 lower-case hex digits (the keys-file field). */
export function hashHex(h: bigint): string {
  return h.toString(16).padStart(16, '0');
}

/** Bits that differ between two 64-bit hashes. */
export function hammingDistance(a: bigint, b: bigint): number {
  let x = a ^ b;
  let n = 0;
  while (x) {
    x &= x - 1n;
    n++;
  }
  return n;
}
