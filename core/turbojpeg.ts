// JPEG decoding through the system's libjpeg-turbo (TurboJPEG API) called with koffi's FFI: the same decoder PIL
// uses, without libvips' per-image overhead (0.8 vs 1.9 ms a 640×460 q90 photo, single thread). Two uses:
// - the loader's decode (decodeJpegRgb): exactly the pixels sharp returns for the JPEGs it accepts (8-bit YCbCr,
//   greyscale or RGB, no ICC profile: sharp converts through an embedded profile, so those stay with sharp);
// - the build's decode check (jpegDecodesCleanly): libjpeg's errors and warnings come from its marker and entropy
//   decoders, which run whole at any output scale, so a 1/8-scale decode finds what a full one finds.
// Whatever this path does not take, or any error or warning, goes back to sharp, which decides and reports: output
// never depends on which decoder ran.
import type Koffi from 'koffi';

// koffi loads a native addon: where it has no build for the platform, sharp decodes everything instead of failing.
const koffi: typeof Koffi | null = await import('koffi').then(
  (m) => m.default,
  () => null,
);

/** TurboJPEG's colourspaces (TJCS_*) that decode to RGB exactly as libvips does; CMYK and YCCK do not. */
const TJCS_RGB = 0;
const TJCS_YCBCR = 1;
const TJCS_GRAY = 2;
const TJPF_RGB = 0;

interface TurboJpeg {
  decompressHeader(bytes: Uint8Array, width: number[], height: number[], sub: number[], cs: number[]): number;
  decompress(bytes: Uint8Array, out: Uint8Array, width: number, height: number): number;
  /** The same decode on libuv's threadpool with a handle of its own; the callback gets tjDecompress2's status. */
  decompressAsync(
    bytes: Uint8Array,
    out: Uint8Array,
    width: number,
    height: number,
    done: (status: number) => void,
  ): void;
}

/** `MIXFORGE_JPEG_DECODER=sharp` turns the fast path off (parity tests compare both paths). */
const disabled = process.env.MIXFORGE_JPEG_DECODER === 'sharp';

let loaded: TurboJpeg | null | undefined;

function load(): TurboJpeg | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (disabled || !koffi) return loaded;
  try {
    // Debian/Ubuntu (libturbojpeg0), then macOS: Homebrew's jpeg-turbo is outside dlopen's default paths.
    const lib = loadFirst([
      'libturbojpeg.so.0',
      'libturbojpeg.0.dylib',
      '/opt/homebrew/opt/jpeg-turbo/lib/libturbojpeg.0.dylib',
      '/usr/local/opt/jpeg-turbo/lib/libturbojpeg.0.dylib',
    ]);
    if (!lib) return loaded;
    const init = lib.func('void *tjInitDecompress()');
    const destroy = lib.func('int tjDestroy(void *)');
    const header = lib.func(
      'int tjDecompressHeader3(void *, const uint8_t *, unsigned long, _Out_ int *, _Out_ int *, _Out_ int *, _Out_ int *)',
    );
    const decompress = lib.func(
      'int tjDecompress2(void *, const uint8_t *, unsigned long, _Out_ uint8_t *, int, int, int, int, int)',
    );
    // One handle per thread (each preprocessing worker loads this module once); flags 0 = accurate integer IDCT
    // and fancy upsampling, libjpeg's defaults, which both PIL and libvips use.
    const handle: unknown = init();
    if (!handle) return loaded;
    loaded = {
      decompressHeader: (bytes, w, h, sub, cs) => header(handle, bytes, bytes.length, w, h, sub, cs),
      decompress: (bytes, out, w, h) => decompress(handle, bytes, bytes.length, out, w, 0, h, TJPF_RGB, 0),
      decompressAsync: (bytes, out, w, h, done) => {
        // A TurboJPEG handle serves one call at a time: concurrent checks each get their own.
        const own: unknown = init();
        if (!own) return done(-1);
        decompress.async(
          own,
          bytes,
          bytes.length,
          out,
          w,
          0,
          h,
          TJPF_RGB,
          0,
          (err: unknown, status: number) => {
            destroy(own);
            done(err ? -1 : status);
          },
        );
      },
    };
  } catch {
    // A library without the TurboJPEG 2 functions: sharp decodes everything.
  }
  return loaded;
}

function loadFirst(names: string[]): ReturnType<typeof Koffi.load> | null {
  for (const name of names)
    try {
      return koffi?.load(name) ?? null;
    } catch {
      // not under this name here
    }
  return null;
}

/** Which decoder reads plain JPEGs on this machine (benchmarks print it). */
export function jpegDecoderName(): 'libturbojpeg' | 'sharp' {
  return load() ? 'libturbojpeg' : 'sharp';
}

export type JpegDecoderName = ReturnType<typeof jpegDecoderName>;

/** True when an APPn segment before the first SOF/SOS carries an ICC profile (APP2 "ICC_PROFILE"). */
function hasIccProfile(bytes: Uint8Array): boolean {
  let i = 2;
  while (i + 4 <= bytes.length && bytes[i] === 0xff) {
    const marker = bytes[i + 1];
    if (marker === 0xda || (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xcc))
      return false;
    const length = (bytes[i + 2] << 8) | bytes[i + 3];
    if (
      marker === 0xe2 &&
      length >= 14 &&
      String.fromCharCode(...bytes.subarray(i + 4, i + 15)) === 'ICC_PROFILE'
    )
      return true;
    i += 2 + length;
  }
  // Markers we cannot walk (fill bytes, truncation): let sharp decide.
  return i + 4 <= bytes.length;
}

/**
 * The size of a JPEG this path decodes (8-bit YCbCr, greyscale or RGB, within `maxPixels`) and the library to decode
 * it with; null for anything else, or when libturbojpeg is not here.
 */
function plainJpeg(
  bytes: Uint8Array,
  maxPixels: number,
): { tj: TurboJpeg; width: number; height: number } | null {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8 || bytes[2] !== 0xff) return null;
  const tj = load();
  if (!tj) return null;
  const w = [0];
  const h = [0];
  const sub = [0];
  const cs = [0];
  if (tj.decompressHeader(bytes, w, h, sub, cs) !== 0) return null;
  const [width, height, colourspace] = [w[0], h[0], cs[0]];
  if (colourspace !== TJCS_YCBCR && colourspace !== TJCS_GRAY && colourspace !== TJCS_RGB) return null;
  if (width < 1 || height < 1 || width * height > maxPixels) return null;
  return { tj, width, height };
}

/**
 * Decode a JPEG to packed RGB through libjpeg-turbo, or null when this path does not apply (not a JPEG, an ICC
 * profile, CMYK, larger than `maxPixels`, any libjpeg error or warning, or no libturbojpeg here).
 */
export function decodeJpegRgb(
  bytes: Uint8Array,
  maxPixels: number,
): { data: Uint8Array; width: number; height: number } | null {
  const jpeg = plainJpeg(bytes, maxPixels);
  if (!jpeg || hasIccProfile(bytes)) return null;
  const { tj, width, height } = jpeg;
  const data = new Uint8Array(width * height * 3);
  // Non-zero is an error or a warning (a truncated file, corrupt data): sharp fails on warnings too, with its message.
  if (tj.decompress(bytes, data, width, height) !== 0) return null;
  return { data, width, height };
}

/**
 * Resolves true when `bytes` is a JPEG that libjpeg-turbo decodes with no error and no warning (at 1/8 scale, off
 * the main thread), false when it is not a plain 8-bit JPEG within `maxPixels`, when libjpeg complains, or when
 * libturbojpeg is not here: false means "ask sharp", never "corrupt".
 */
export function jpegDecodesCleanly(bytes: Uint8Array, maxPixels: number): Promise<boolean> {
  const jpeg = plainJpeg(bytes, maxPixels);
  if (!jpeg) return Promise.resolve(false);
  const { tj, width, height } = jpeg;
  // Asking for ⌈w/8⌉ × ⌈h/8⌉ makes TurboJPEG pick its 1/8 scaling factor: the IDCT shrinks to one value a block.
  const [sw, sh] = [Math.ceil(width / 8), Math.ceil(height / 8)];
  const out = new Uint8Array(sw * sh * 3);
  return new Promise((resolve) => tj.decompressAsync(bytes, out, sw, sh, (status) => resolve(status === 0)));
}
