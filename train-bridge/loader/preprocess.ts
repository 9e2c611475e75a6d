// Model-input preprocessing of one image (LLaVA `pad` mode): decode with sharp, pad to a square with the processor's
// mean colour at source size, resize to R×R, then write u8 NHWC or normalised f32 / f16 NCHW into a batch buffer.
import sharp from 'sharp';

export type ImageDtype = 'f32' | 'f16' | 'u8';
export type ResizeKernel = 'nearest' | 'linear' | 'cubic' | 'lanczos3';

export interface PreprocessOptions {
  /** Model resolution R: images come out R×R (1024 for FastViTHD, 768, 256, …). */
  resolution: number;
  /** Per-channel mean and std of the image processor (FastVLM: mean 0, std 1, so values are x / 255). */
  mean: [number, number, number];
  std: [number, number, number];
  /** Resampling filter; `cubic` matches PIL's BICUBIC that LLaVA-style processors use. */
  kernel: ResizeKernel;
  dtype: ImageDtype;
}

export const FASTVLM_PREPROCESS: PreprocessOptions = {
  resolution: 1024,
  mean: [0, 0, 0],
  std: [1, 1, 1],
  kernel: 'cubic',
  dtype: 'f32',
};

/** Largest decoded image accepted (same order as the build's limit): refuses decompression bombs. */
const LIMIT_INPUT_PIXELS = 16384 * 16384;

/** The pad colour in 8-bit RGB: the processor mean scaled to 0–255 (LLaVA's expand2square). */
export function padColour(mean: readonly number[]): [number, number, number] {
  return [0, 1, 2].map((c) => Math.min(255, Math.max(0, Math.round(mean[c] * 255)))) as [
    number,
    number,
    number,
  ];
}

/** Placement of a w×h image in its padded square (LLaVA's expand2square: centred, floor on the leading side). */
export function squareGeometry(width: number, height: number): { side: number; left: number; top: number } {
  const side = Math.max(width, height);
  return { side, left: Math.floor((side - width) / 2), top: Math.floor((side - height) / 2) };
}

/** Decode to 8-bit sRGB, pad to a square with `pad` at source size, resize to R×R: R·R·3 bytes, HWC. */
export async function squareRgb(
  bytes: Uint8Array,
  resolution: number,
  pad: readonly [number, number, number],
  kernel: ResizeKernel,
): Promise<{ pixels: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(bytes, { limitInputPixels: LIMIT_INPUT_PIXELS })
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  const { width, height } = info;
  if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
  const { side, left, top } = squareGeometry(width, height);
  let square: Buffer = data;
  if (width !== height) {
    // Padding in JS, before the resize: sharp always applies `extend` after `resize` within one pipeline.
    square = Buffer.allocUnsafe(side * side * 3);
    if (pad[0] === pad[1] && pad[1] === pad[2]) square.fill(pad[0]);
    else for (let i = 0; i < side * side * 3; i += 3) [square[i], square[i + 1], square[i + 2]] = pad;
    const rowBytes = width * 3;
    for (let y = 0; y < height; y++)
      data.copy(square, ((top + y) * side + left) * 3, y * rowBytes, (y + 1) * rowBytes);
  }
  if (side === resolution) return { pixels: square, width, height };
  const pixels = await sharp(square, { raw: { width: side, height: side, channels: 3 } })
    .resize(resolution, resolution, { kernel, fit: 'fill' })
    .raw()
    .toBuffer();
  return { pixels, width, height };
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** IEEE binary16 bits of a number, round to nearest even (Node 20 has no Float16Array). */
export function toHalfBits(x: number): number {
  F32[0] = x;
  const b = U32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rest = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** The value of binary16 bits (tests and consumers without Float16Array). */
export function fromHalfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Per-channel lookup tables byte → normalised value: the u8 → float conversion is three table reads per pixel. */
export function channelTables(mean: readonly number[], std: readonly number[]): Float32Array[] {
  return [0, 1, 2].map((c) => {
    const t = new Float32Array(256);
    for (let i = 0; i < 256; i++) t[i] = (i / 255 - mean[c]) / std[c];
    return t;
  });
}

export function halfTables(tables: readonly Float32Array[]): Uint16Array[] {
  return tables.map((t) => Uint16Array.from(t, (v) => toHalfBits(v)));
}

/**
 * Write HWC u8 pixels as one CHW image at `out[offset…]`. Plain indexed loops over typed arrays with the
 * tables hoisted: V8 keeps them monomorphic and bounds-check-light (measured in bench/loader.ts).
 */
export function writePlanar(
  pixels: Uint8Array,
  tables: readonly (Float32Array | Uint16Array)[],
  out: Float32Array | Uint16Array,
  offset: number,
): void {
  const hw = pixels.length / 3;
  const t0 = tables[0];
  const t1 = tables[1];
  const t2 = tables[2];
  const o0 = offset;
  const o1 = offset + hw;
  const o2 = offset + 2 * hw;
  for (let i = 0, j = 0; i < hw; i++, j += 3) {
    out[o0 + i] = t0[pixels[j]];
    out[o1 + i] = t1[pixels[j + 1]];
    out[o2 + i] = t2[pixels[j + 2]];
  }
}
