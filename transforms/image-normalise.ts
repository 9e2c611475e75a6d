// Image normalisation with sharp: decode every image fully (a pixel limit guards against bombs), then keep the
// original bytes when they already are an upright 8-bit sRGB JPEG/PNG/WebP within max_side, else re-encode once.
import { Semaphore } from 'async-mutex';
import sharp, {
  type JpegOptions,
  type Metadata,
  type OutputInfo,
  type PngOptions,
  type SharpOptions,
} from 'sharp';
import { sha256Hex } from '../core/canonical-json.ts';
import type { QuarantineReason } from '../core/quarantine.ts';
import type { SampleImage } from '../core/schema.ts';
import { jpegDecodesCleanly } from '../core/turbojpeg.ts';
import type { ImageOptions } from './component-options.ts';
import { hashHex, perceptualHash } from './perceptual-hash.ts';

/** Why an image was re-encoded. None: the original bytes were kept exactly. */
export type ImageChange =
  | 'orientation' // EXIF orientation other than 1, applied to the pixels
  | 'colour' // not sRGB: CMYK, greyscale, 16-bit RGB/grey, Lab, ...
  | 'depth' // more than 8 bits per sample
  | 'alpha' // an alpha channel, flattened onto white
  | 'palette' // palette (indexed) image: PNG-8, GIF
  | 'icc' // an embedded ICC profile that is not sRGB, converted to sRGB
  | 'resize' // a side above max_side
  | 'frames' // animated: only the first frame kept
  | 'format'; // a container we do not store as is (TIFF, AVIF)

export interface NormalisedImage {
  image: SampleImage;
  /** sha256 (hex) of `image.bytes`. */
  sha256: string;
  /** The source image's size after EXIF orientation, before any downscale (what size filters look at). */
  sourceWidth: number;
  sourceHeight: number;
  /** Empty when the original bytes were kept. */
  changes: ImageChange[];
  /** The stored image's 64-bit perceptual hash (hex), when asked for (near-duplicate detection). */
  perceptualHash?: string;
}

/** The spec's image options, plus whether to compute the perceptual hash (only builds that use it pay for it). */
export type NormaliseOptions = ImageOptions & { perceptualHash?: boolean };

export type ImageOutcome =
  | { ok: true; value: NormalisedImage }
  | { ok: false; reason: QuarantineReason; message: string };

/** Formats we decode. SVG/PDF (renderers of untrusted documents) and exotic loaders are refused. */
const ACCEPTED_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);
/** Formats we store as they are when nothing else changes; others are re-encoded for every loader to read. */
const KEPT_FORMATS = new Set(['jpeg', 'png', 'webp']);

/**
 * Alpha is flattened onto white: documents, charts and screenshots with transparent backgrounds carry dark text
 * that would vanish on black (PIL's `convert('RGB')` just drops alpha, exposing whatever colour sits under it).
 */
export const FLATTEN_BACKGROUND = { r: 255, g: 255, b: 255 } as const;

/**
 * JPEG encoder settings for re-encoding. sharp's defaults turn on mozjpeg's Huffman optimisation; trellis
 * quantisation, overshoot deringing and scan optimisation are off unless asked for. All four are off here,
 * explicitly: they shrink files by a few percent at a large CPU cost (BASELINES.md: 207 img/s with mozjpeg
 * defaults vs 345 img/s without, decode + q95 encode). See docs/decisions.md.
 */
export function jpegEncoderOptions(quality: number): JpegOptions {
  return {
    quality,
    progressive: false,
    optimiseCoding: false,
    trellisQuantisation: false,
    overshootDeringing: false,
    optimiseScans: false,
  };
}

/** PNG re-encoding: zlib level 6 with no adaptive filtering, the speed/size middle ground. */
export const PNG_ENCODER_OPTIONS: PngOptions = { compressionLevel: 6, adaptiveFiltering: false };

function inputOptions(options: ImageOptions): SharpOptions {
  // failOn 'warning' by default (sharp's advice for untrusted input): a JPEG with a corrupt entropy stream decodes
  // to garbage under 'error'; we would rather quarantine it than train on it. `images.fail_on: error` relaxes it.
  return { failOn: options.fail_on, limitInputPixels: options.max_pixels };
}

/** Whether the bytes stop before their format's end marker: used to tell truncated from otherwise corrupt. */
export function looksTruncated(bytes: Uint8Array): boolean {
  const n = bytes.length;
  if (n >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    // JPEG ends with EOI (FF D9); tolerate trailing NUL padding some writers add.
    let end = n;
    while (end > 2 && bytes[end - 1] === 0x00) end--;
    return !(bytes[end - 2] === 0xff && bytes[end - 1] === 0xd9);
  }
  if (n >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    // PNG ends with the IEND chunk: type 'IEND' 8 bytes before the end.
    return !(n >= 12 && Buffer.from(bytes.subarray(n - 8, n - 4)).toString('latin1') === 'IEND');
  }
  if (n >= 6 && Buffer.from(bytes.subarray(0, 3)).toString('latin1') === 'GIF') return bytes[n - 1] !== 0x3b;
  if (n >= 12 && Buffer.from(bytes.subarray(0, 4)).toString('latin1') === 'RIFF') {
    return Buffer.from(bytes.buffer, bytes.byteOffset, n).readUInt32LE(4) + 8 > n;
  }
  return false;
}

/** libvips repeats its warnings; keep each line once and the whole short enough for a quarantine table. */
function shortMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const lines = [...new Set(text.split('\n').map((l) => l.trim()))].filter(Boolean);
  const joined = lines.join('; ');
  return joined.length > 300 ? `${joined.slice(0, 297)}...` : joined;
}

function classifyError(err: unknown, bytes: Uint8Array): { reason: QuarantineReason; message: string } {
  const message = shortMessage(err);
  if (/exceeds pixel limit/i.test(message)) return { reason: 'image-too-large', message };
  if (/unsupported image format/i.test(message)) return { reason: 'image-not-an-image', message };
  if (/premature end|truncated|unexpected end of|end of file/i.test(message) || looksTruncated(bytes)) {
    return { reason: 'image-truncated', message };
  }
  return { reason: 'image-corrupt', message };
}

/** The profile's description (ICC `desc` tag, v2 `desc` or v4 `mluc`), or undefined when it cannot be read. */
export function iccDescription(icc: Uint8Array): string | undefined {
  const b = Buffer.from(icc.buffer, icc.byteOffset, icc.byteLength);
  if (b.length < 132) return undefined;
  const count = b.readUInt32BE(128);
  for (let i = 0; i < count && 132 + i * 12 + 12 <= b.length; i++) {
    const at = 132 + i * 12;
    if (b.toString('latin1', at, at + 4) !== 'desc') continue;
    const off = b.readUInt32BE(at + 4);
    const len = b.readUInt32BE(at + 8);
    if (off + len > b.length || len < 12) return undefined;
    const type = b.toString('latin1', off, off + 4);
    if (type === 'desc') {
      const n = b.readUInt32BE(off + 8);
      return b.toString('latin1', off + 12, Math.min(off + 12 + n, off + len)).replace(/\0+$/, '');
    }
    if (type === 'mluc' && len >= 28) {
      const strLen = b.readUInt32BE(off + 20);
      const strOff = b.readUInt32BE(off + 24);
      const start = off + strOff;
      if (start + strLen > off + len) return undefined;
      const utf16be = Buffer.from(b.subarray(start, start + strLen));
      return utf16be.swap16().toString('utf16le').replace(/\0+$/, '');
    }
    return undefined;
  }
  return undefined;
}

/** sRGB profiles go by many names (`sRGB IEC61966-2.1`, `sRGB built-in`, `sRGB2014`): all say sRGB. */
export function isSrgbProfile(icc: Uint8Array): boolean {
  return /srgb/i.test(iccDescription(icc) ?? '');
}

/**
 * Decode every row of a JPEG, PNG or WebP (any decoder warning or error throws under `input`), but hand only its
 * last pixel to JS: JPEG and PNG decode in row order and WebP decodes the whole frame, so reaching that pixel decodes
 * all of them. The whole raw image (~1 MB per photo) made the GC the build's largest cost after libvips.
 */
async function decodeCheck(bytes: Uint8Array, input: SharpOptions, meta: Metadata): Promise<void> {
  await sharp(bytes, input)
    .extract({ left: meta.width - 1, top: meta.height - 1, width: 1, height: 1 })
    .raw()
    .toBuffer();
}

/**
 * libvips keeps one error buffer per process: when images fail at the same time on libuv's threads, one failure's
 * text lands in another's error or is cleared before it is read (sharp then says only "Warning treated as error
 * due to failOn setting"), so the quarantine message, and the reason read from it, changed from run to run. Every
 * attempt holds one permit; a failed image is decoded again holding all of them, alone in this process, and that
 * outcome is the one recorded. The semaphore is fair: once a retry waits, later attempts queue behind it.
 */
// async-mutex walks every permit count on each release, so the total stays small: 64 images in flight per
// process is far more than libuv's threads decode at once (with 2^20 permits a build took twice the CPU).
const ALL_PERMITS = 64;
const libvips = new Semaphore(ALL_PERMITS);

/**
 * Validates and normalises one image. Never throws for bad image data: every failure is an outcome with a
 * quarantine reason (zero bytes, not an image, unsupported format, too many pixels, animated under `reject`,
 * truncated, corrupt), the same whatever else this process decodes meanwhile.
 */
export async function normaliseImage(bytes: Uint8Array, options: NormaliseOptions): Promise<ImageOutcome> {
  const outcome = await libvips.runExclusive(() => normaliseOnce(bytes, options), 1);
  if (outcome.ok || outcome.reason === 'image-empty') return outcome;
  return libvips.runExclusive(() => normaliseOnce(bytes, options), ALL_PERMITS);
}

async function normaliseOnce(bytes: Uint8Array, options: NormaliseOptions): Promise<ImageOutcome> {
  if (bytes.length === 0) return { ok: false, reason: 'image-empty', message: 'zero bytes' };
  const input = inputOptions(options);
  let meta: Metadata;
  try {
    meta = await sharp(bytes, input).metadata();
  } catch (err) {
    return { ok: false, ...classifyError(err, bytes) };
  }
  if (!ACCEPTED_FORMATS.has(meta.format) || (meta.format === 'heif' && meta.compression !== 'av1')) {
    const what = meta.format === 'heif' ? `heif/${meta.compression ?? 'unknown'}` : meta.format;
    return { ok: false, reason: 'image-unsupported-format', message: `format ${what} is not accepted` };
  }
  const pages = meta.pages ?? 1;
  if (pages > 1 && options.animated === 'reject') {
    return { ok: false, reason: 'image-animated', message: `${meta.format} with ${pages} frames` };
  }
  // Orientations 5–8 swap the sides (sharp reports the upright size in autoOrient; derive it if absent).
  const swapped = (meta.orientation ?? 1) >= 5;
  const sourceWidth = meta.autoOrient?.width ?? (swapped ? meta.height : meta.width);
  const sourceHeight = meta.autoOrient?.height ?? (swapped ? meta.width : meta.height);

  const changes: ImageChange[] = [];
  if (meta.orientation !== undefined && meta.orientation !== 1) changes.push('orientation');
  if (meta.space !== 'srgb' || (meta.channels !== 3 && !(meta.channels === 4 && meta.hasAlpha))) {
    changes.push('colour');
  }
  if (meta.depth !== 'uchar') changes.push('depth');
  if (meta.hasAlpha) changes.push('alpha');
  if (meta.isPalette) changes.push('palette');
  if (meta.icc && !isSrgbProfile(meta.icc)) changes.push('icc');
  if (Math.max(sourceWidth, sourceHeight) > options.max_side) changes.push('resize');
  if (pages > 1) changes.push('frames');
  if (!KEPT_FORMATS.has(meta.format)) changes.push('format');

  if (changes.length === 0) {
    // Nothing to change, but the pixels must still decode: the header alone proves little. When the hash is wanted,
    // its thumbnail decode (shrink-on-load, same input options) is that check, so it costs no second decode. A JPEG
    // that libjpeg-turbo reads without a warning passes sharp's check too (same library, same warnings; tested on
    // damaged files): only the others, and any it complains about, go to sharp, which decides and names the fault.
    let hash: string | undefined;
    try {
      if (options.perceptualHash) hash = hashHex(await perceptualHash(bytes, input));
      else if (!(meta.format === 'jpeg' && (await jpegDecodesCleanly(bytes, options.max_pixels))))
        await decodeCheck(bytes, input, meta);
    } catch (err) {
      return { ok: false, ...classifyError(err, bytes) };
    }
    return {
      ok: true,
      value: {
        image: { bytes, width: meta.width, height: meta.height, format: meta.format },
        sha256: sha256Hex(bytes),
        sourceWidth,
        sourceHeight,
        changes,
        ...(hash === undefined ? {} : { perceptualHash: hash }),
      },
    };
  }

  let pipeline = sharp(bytes, input).autoOrient();
  if (changes.includes('resize')) {
    pipeline = pipeline.resize({
      width: options.max_side,
      height: options.max_side,
      fit: 'inside',
      withoutEnlargement: true,
    });
  }
  if (meta.hasAlpha) pipeline = pipeline.flatten({ background: FLATTEN_BACKGROUND });
  pipeline = pipeline.toColourspace('srgb');
  pipeline =
    options.reencode_format === 'png'
      ? pipeline.png(PNG_ENCODER_OPTIONS)
      : pipeline.jpeg(jpegEncoderOptions(options.jpeg_quality));
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await pipeline.toBuffer({ resolveWithObject: true });
  } catch (err) {
    return { ok: false, ...classifyError(err, bytes) };
  }
  const outBytes = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength);
  // A re-encoded image is hashed as stored (one more decode, of the smaller normalised image).
  const hash = options.perceptualHash ? hashHex(await perceptualHash(outBytes, input)) : undefined;
  return {
    ok: true,
    value: {
      image: { bytes: outBytes, width: out.info.width, height: out.info.height, format: out.info.format },
      sha256: sha256Hex(outBytes),
      sourceWidth,
      sourceHeight,
      changes,
      ...(hash === undefined ? {} : { perceptualHash: hash }),
    },
  };
}
