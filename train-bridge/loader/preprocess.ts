// Model-input preprocessing of one image (LLaVA `pad` mode): decode with sharp, pad to a square with the processor's
// mean colour at source size, resize to R×R, then write u8 NHWC or normalised f32 / f16 NCHW into a batch buffer.
import { FastResizeFilter, ResizeFit, Transformer } from '@napi-rs/image';
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
  if (kernel === 'cubic') return { pixels: resizeCatmullRom(square, side, resolution), width, height };
  const pixels = await sharp(square, { raw: { width: side, height: side, channels: 3 } })
    .resize(resolution, resolution, { kernel, fit: 'fill' })
    .raw()
    .toBuffer();
  return { pixels, width, height };
}

/**
 * Bicubic (Catmull-Rom, a = −0.5: PIL's BICUBIC) resize of an RGB square through fast_image_resize's SIMD
 * convolution (@napi-rs/image). libvips enlarges through an affine interpolator at ~3× PIL's cost
 * (docs/benchmarks.md); this path is faster than PIL. The binding takes RGBA, so alpha is added and dropped here.
 */
export function resizeCatmullRom(rgb: Uint8Array, side: number, resolution: number): Buffer {
  const n = side * side;
  const rgba = new Uint8Array(n * 4);
  for (let i = 0, j = 0, k = 0; i < n; i++, j += 3, k += 4) {
    rgba[k] = rgb[j];
    rgba[k + 1] = rgb[j + 1];
    rgba[k + 2] = rgb[j + 2];
    rgba[k + 3] = 255;
  }
  const out = Transformer.fromRgbaPixels(rgba, side, side)
    .fastResize({
      width: resolution,
      height: resolution,
      filter: FastResizeFilter.CatmullRom,
      fit: ResizeFit.Fill,
    })
    .rawPixelsSync();
  const m = resolution * resolution;
  const pixels = Buffer.allocUnsafe(m * 3);
  for (let i = 0, j = 0, k = 0; i < m; i++, j += 3, k += 4) {
    pixels[j] = out[k];
    pixels[j + 1] = out[k + 1];
    pixels[j + 2] = out[k + 2];
  }
  return pixels;
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

/** Per-channel affine map byte → normalised value: x·scale + bias = (x / 255 − mean) / std. */
export function channelAffine(
  mean: readonly number[],
  std: readonly number[],
): { scale: number[]; bias: number[] } {
  return { scale: [0, 1, 2].map((c) => 1 / (255 * std[c])), bias: [0, 1, 2].map((c) => -mean[c] / std[c]) };
}

/** The 256 values of each channel (as f32), from the same affine map: the reference for tests and the f16 tables. */
export function channelTables(mean: readonly number[], std: readonly number[]): Float32Array[] {
  const { scale, bias } = channelAffine(mean, std);
  return [0, 1, 2].map((c) => Float32Array.from({ length: 256 }, (_, i) => i * scale[c] + bias[c]));
}

export function halfTables(tables: readonly Float32Array[]): Uint16Array[] {
  return tables.map((t) => Uint16Array.from(t, (v) => toHalfBits(v)));
}

/**
 * HWC u8 → one CHW f32 image at `out[offset…]`. A multiply-add per value into three plane views: measured faster
 * than a 256-entry table (bench/loader.ts); one function per output type keeps V8's element access monomorphic.
 */
export function writePlanarF32(
  pixels: Uint8Array,
  affine: { scale: readonly number[]; bias: readonly number[] },
  out: Float32Array,
  offset: number,
): void {
  const hw = pixels.length / 3;
  const r = out.subarray(offset, offset + hw);
  const g = out.subarray(offset + hw, offset + 2 * hw);
  const b = out.subarray(offset + 2 * hw, offset + 3 * hw);
  const [s0, s1, s2] = affine.scale;
  const [b0, b1, b2] = affine.bias;
  for (let i = 0, j = 0; i < hw; i++, j += 3) {
    r[i] = pixels[j] * s0 + b0;
    g[i] = pixels[j + 1] * s1 + b1;
    b[i] = pixels[j + 2] * s2 + b2;
  }
}

/** HWC u8 → one CHW f16 image (binary16 bits) through per-channel tables. */
export function writePlanarF16(
  pixels: Uint8Array,
  tables: readonly Uint16Array[],
  out: Uint16Array,
  offset: number,
): void {
  const hw = pixels.length / 3;
  const r = out.subarray(offset, offset + hw);
  const g = out.subarray(offset + hw, offset + 2 * hw);
  const b = out.subarray(offset + 2 * hw, offset + 3 * hw);
  const [t0, t1, t2] = tables;
  for (let i = 0, j = 0; i < hw; i++, j += 3) {
    r[i] = t0[pixels[j]];
    g[i] = t1[pixels[j + 1]];
    b[i] = t2[pixels[j + 2]];
  }
}
