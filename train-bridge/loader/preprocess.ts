// Model-input preprocessing of one image (LLaVA `pad` mode): decode (libjpeg-turbo for plain JPEGs, else sharp),
// pad to a square with the processor's mean colour at source size, resize to R×R, then write u8 NHWC or
// normalised f32 / f16 NCHW into a batch buffer.
import { FastResizeFilter, ResizeFit, Transformer } from '@napi-rs/image';
import sharp from 'sharp';
import { decodeJpegRgb, type JpegDecoderName } from '../../core/turbojpeg.ts';
import { toHalfBits } from '../half-float.ts';

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

/** Pixels of one preprocessed image, HWC: RGB, or RGBA with alpha 255 (the bicubic path stays in RGBA). */
export interface SquarePixels {
  pixels: Uint8Array;
  channels: 3 | 4;
  /** Source size, before padding and resizing. */
  width: number;
  height: number;
  /** What decoded it: libjpeg-turbo directly (plain JPEGs, where the library is installed) or sharp. */
  decoder: JpegDecoderName;
}

/**
 * @napi-rs/image decodes its input with the image crate, whose default limit refuses a decoded buffer over 512 MiB:
 * a padded RGB square larger than that (side > 13377) goes to the resizer as RGBA pixels instead.
 */
const PNM_MAX_BYTES = 512 * 1024 * 1024;

/**
 * Decode to 8-bit sRGB, pad to a square with `pad` at source size, resize to R×R. The bicubic path's resizer
 * (fast_image_resize through @napi-rs/image) widens its input to RGBA itself and returns RGBA, so that path comes
 * out RGBA; a square already R×R is not resized and comes out RGB.
 */
export async function squarePixels(
  bytes: Uint8Array,
  resolution: number,
  pad: readonly [number, number, number],
  kernel: ResizeKernel,
): Promise<SquarePixels> {
  const fast = decodeJpegRgb(bytes, LIMIT_INPUT_PIXELS);
  const decoder: JpegDecoderName = fast ? 'libturbojpeg' : 'sharp';
  const { data, width, height } = fast ?? (await decodeRgb(bytes));
  const at = squareGeometry(width, height);
  const { side } = at;
  // Padding in JS, before the resize: sharp always applies `extend` after `resize` within one pipeline.
  if (side === resolution)
    return {
      pixels: width === height ? data : padRgb(data, width, height, pad, at),
      channels: 3,
      width,
      height,
      decoder,
    };
  if (kernel === 'cubic')
    return {
      pixels: cubicResize(data, width, height, pad, at, resolution),
      channels: 4,
      width,
      height,
      decoder,
    };
  const square = width === height ? data : padRgb(data, width, height, pad, at);
  const pixels = await sharp(square, { raw: { width: side, height: side, channels: 3 } })
    .resize(resolution, resolution, { kernel, fit: 'fill' })
    .raw()
    .toBuffer();
  return { pixels, channels: 3, width, height, decoder };
}

/** Any image sharp reads → packed 8-bit sRGB. */
async function decodeRgb(bytes: Uint8Array): Promise<{ data: Uint8Array; width: number; height: number }> {
  const { data, info } = await sharp(bytes, { limitInputPixels: LIMIT_INPUT_PIXELS })
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
  return { data, width: info.width, height: info.height };
}

/**
 * Pad and resize with fast_image_resize's Catmull-Rom (PIL's BICUBIC): RGBA out. The padded square goes in as a
 * binary PPM (RGB behind a short header), which the binding widens to RGBA in Rust: 1.5 vs 3.0 ms per image at 256²
 * against widening in JS and handing it RGBA pixels (`fromRgbaPixels`), with byte-identical output.
 */
function cubicResize(
  data: Uint8Array,
  width: number,
  height: number,
  pad: readonly [number, number, number],
  at: { side: number; left: number; top: number },
  resolution: number,
): Uint8Array {
  const { side } = at;
  const options = {
    width: resolution,
    height: resolution,
    filter: FastResizeFilter.CatmullRom,
    fit: ResizeFit.Fill,
  };
  const image =
    side * side * 3 <= PNM_MAX_BYTES
      ? new Transformer(
          padRgb(data, width, height, pad, at, new TextEncoder().encode(`P6\n${side} ${side}\n255\n`)),
        )
      : Transformer.fromRgbaPixels(padRgba(data, width, height, pad, at), side, side);
  return image.fastResize(options).rawPixelsSync();
}

/** RGB → a side² RGB square filled with `pad`, the image at (left, top), after `header` (bytes before the square). */
function padRgb(
  data: Uint8Array,
  width: number,
  height: number,
  pad: readonly [number, number, number],
  at: { side: number; left: number; top: number },
  header: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const { side, left, top } = at;
  const out = new Uint8Array(header.length + side * side * 3);
  out.set(header);
  const square = out.subarray(header.length);
  // A fresh array is zeroed; any other colour is laid once and doubled with copyWithin (memcpy-speed).
  if (pad[0] !== 0 || pad[1] !== 0 || pad[2] !== 0) {
    square.set(pad);
    for (let n = 3; n < square.length; n *= 2) square.copyWithin(n, 0, Math.min(n, square.length - n));
  }
  const rowBytes = width * 3;
  for (let y = 0; y < height; y++)
    square.set(data.subarray(y * rowBytes, (y + 1) * rowBytes), ((top + y) * side + left) * 3);
  return out;
}

/**
 * RGB → a side² RGBA square (alpha 255) filled with `pad`, the image at (left, top): one 32-bit store a pixel
 * (little-endian, as wherever Node runs: x86-64, arm64).
 */
function padRgba(
  data: Uint8Array,
  width: number,
  height: number,
  pad: readonly [number, number, number],
  at: { side: number; left: number; top: number },
): Uint8Array {
  const { side, left, top } = at;
  const square = new Uint8Array(side * side * 4);
  const words = new Uint32Array(square.buffer);
  words.fill((pad[0] | (pad[1] << 8) | (pad[2] << 16) | (255 << 24)) >>> 0);
  for (let y = 0; y < height; y++) {
    let o = (top + y) * side + left;
    const end = (y + 1) * width * 3;
    for (let i = y * width * 3; i < end; i += 3, o++)
      words[o] = (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (255 << 24)) >>> 0;
  }
  return square;
}

/** RGBA → RGB, dropping alpha. */
export function rgbaToRgb(
  rgba: Uint8Array,
  out: Uint8Array = new Uint8Array((rgba.length / 4) * 3),
  at = 0,
): Uint8Array {
  const n = rgba.length / 4;
  for (let i = 0, j = at, k = 0; i < n; i++, j += 3, k += 4) {
    out[j] = rgba[k];
    out[j + 1] = rgba[k + 1];
    out[j + 2] = rgba[k + 2];
  }
  return out;
}

/** Decode, pad to a square, resize to R×R: R·R·3 bytes, RGB HWC. */
export async function squareRgb(
  bytes: Uint8Array,
  resolution: number,
  pad: readonly [number, number, number],
  kernel: ResizeKernel,
): Promise<{ pixels: Uint8Array; width: number; height: number }> {
  const s = await squarePixels(bytes, resolution, pad, kernel);
  return { pixels: s.channels === 3 ? s.pixels : rgbaToRgb(s.pixels), width: s.width, height: s.height };
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

/** The R, G and B planes of the CHW image at `out[offset…]` (called once per image, outside the pixel loops). */
function channelPlanes<T extends Float32Array | Uint16Array>(out: T, offset: number, hw: number): [T, T, T] {
  return [0, 1, 2].map((c) => out.subarray(offset + c * hw, offset + (c + 1) * hw) as T) as [T, T, T];
}

/**
 * HWC u8 (RGB or RGBA) → one CHW f32 image at `out[offset…]`. A multiply-add per value into three plane views: measured faster
 * than a 256-entry table (bench/loader.ts); one function per output type keeps V8's element access monomorphic.
 */
export function writePlanarF32(
  pixels: Uint8Array,
  affine: { scale: readonly number[]; bias: readonly number[] },
  out: Float32Array,
  offset: number,
  channels: 3 | 4 = 3,
): void {
  const hw = pixels.length / channels;
  const [r, g, b] = channelPlanes(out, offset, hw);
  const [s0, s1, s2] = affine.scale;
  const [b0, b1, b2] = affine.bias;
  for (let i = 0, j = 0; i < hw; i++, j += channels) {
    r[i] = pixels[j] * s0 + b0;
    g[i] = pixels[j + 1] * s1 + b1;
    b[i] = pixels[j + 2] * s2 + b2;
  }
}

/** HWC u8 (RGB or RGBA) → one CHW f16 image (binary16 bits) through per-channel tables. */
export function writePlanarF16(
  pixels: Uint8Array,
  tables: readonly Uint16Array[],
  out: Uint16Array,
  offset: number,
  channels: 3 | 4 = 3,
): void {
  const hw = pixels.length / channels;
  const [r, g, b] = channelPlanes(out, offset, hw);
  const [t0, t1, t2] = tables;
  for (let i = 0, j = 0; i < hw; i++, j += channels) {
    r[i] = t0[pixels[j]];
    g[i] = t1[pixels[j + 1]];
    b[i] = t2[pixels[j + 2]];
  }
}
