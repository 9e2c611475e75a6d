// The image test corpus: every bad case the image stage must classify and every colour/container variant it must
// normalise, generated with sharp (an independent encoder) or built byte by byte where sharp will not write it.
import { crc32 } from 'node:zlib';
import sharp from 'sharp';

export const RED = { r: 200, g: 30, b: 10 } as const;
export const BLUE = { r: 10, g: 40, b: 220 } as const;

function solid(width: number, height: number, colour: { r: number; g: number; b: number }) {
  return sharp({ create: { width, height, channels: 3, background: colour } });
}

/** Deterministic noise: JPEG entropy data with no long runs, so flipped bytes hit real Huffman codes. */
function noise(width: number, height: number, seed: number): Buffer {
  const out = Buffer.alloc(width * height * 3);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export async function noiseJpeg(width: number, height: number, seed = 1, quality = 90): Promise<Buffer> {
  return sharp(noise(width, height, seed), { raw: { width, height, channels: 3 } })
    .jpeg({ quality })
    .toBuffer();
}

/** A PNG chunk with its CRC. */
function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0);
  return Buffer.concat([head, data, crc]);
}

/** A well-formed PNG header claiming width × height RGB pixels, with a tiny IDAT: a decompression bomb's shape. */
export function bombPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/**
 * A PNG whose IDAT bytes are damaged but whose structure (every chunk, IEND) is intact: corrupt, not truncated.
 */
export async function corruptPng(): Promise<Buffer> {
  const png = Buffer.from(
    await sharp(noise(64, 64, 7), { raw: { width: 64, height: 64, channels: 3 } })
      .png()
      .toBuffer(),
  );
  const idat = png.indexOf('IDAT', 8, 'latin1');
  for (let i = idat + 20; i < idat + 200; i += 3) png[i] ^= 0x5a;
  return png;
}

/**
 * A JPEG whose entropy-coded data is damaged (markers and EOI intact): corrupt, not truncated. A flat image with
 * optimised Huffman tables (sharp's default) uses few codes, so junk bytes hit codes the tables lack and libjpeg
 * reports "bad Huffman code"; in a noise image almost any bit string decodes, silently, to other pixels.
 */
export async function corruptJpeg(): Promise<Buffer> {
  const jpg = Buffer.from(await solid(256, 256, RED).jpeg({ quality: 90 }).toBuffer());
  const sos = jpg.indexOf(Buffer.from([0xff, 0xda]));
  // Overwrite a stretch in the middle of the scan with bytes that are never 0xFF (no fake markers).
  const start = sos + Math.floor((jpg.length - sos) / 3);
  const junk = noise(400, 1, 11).subarray(0, 400);
  for (let i = 0; i < junk.length && start + i < jpg.length - 2; i++)
    jpg[start + i] = junk[i] === 0xff ? 0x00 : junk[i];
  return jpg;
}

/** 14 bytes past a JPEG's first SOS marker: the end of a 3-component scan header, where entropy-coded data starts. */
export function jpegScanStart(bytes: Uint8Array): number {
  return (
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(Buffer.from([0xff, 0xda])) + 14
  );
}

/**
 * A copy of `bytes` damaged `at` (0..1) of the way through the data after `headerEnd`: `n` bytes flipped (never to
 * 0xFF, so no fake markers), stopping before the last two (a JPEG's EOI).
 */
export function damaged(bytes: Uint8Array, headerEnd: number, at: number, n: number): Buffer {
  const out = Buffer.from(bytes);
  const start = headerEnd + Math.floor((out.length - 2 - headerEnd) * at);
  for (let i = start; i < Math.min(start + n, out.length - 2); i++)
    out[i] = (out[i] ^ 0x5a) === 0xff ? 0 : out[i] ^ 0x5a;
  return out;
}

/** A JPEG cut `at` (0..1) of the way through its entropy-coded data, with the EOI marker put back. */
export function cutJpeg(jpeg: Uint8Array, at: number): Buffer {
  const from = jpegScanStart(jpeg);
  const cut = from + Math.floor((jpeg.length - from) * at);
  return Buffer.concat([jpeg.subarray(0, cut), Buffer.from([0xff, 0xd9])]);
}

/** 40×20 stored, left half red and right half blue, EXIF orientation 6 (display rotated 90° clockwise). */
export async function exifRotatedJpeg(): Promise<Buffer> {
  const left = await solid(20, 20, RED).png().toBuffer();
  return sharp({ create: { width: 40, height: 20, channels: 3, background: BLUE } })
    .composite([{ input: left, left: 0, top: 0 }])
    .jpeg({ quality: 95 })
    .withMetadata({ orientation: 6 })
    .toBuffer();
}

export async function animatedGif(): Promise<Buffer> {
  const f1 = await solid(32, 16, RED).png().toBuffer();
  const f2 = await solid(32, 16, BLUE).png().toBuffer();
  return sharp([f1, f2], { join: { animated: true } })
    .gif()
    .toBuffer();
}

export async function animatedWebp(): Promise<Buffer> {
  const f1 = await solid(32, 16, RED).png().toBuffer();
  const f2 = await solid(32, 16, BLUE).png().toBuffer();
  return sharp([f1, f2], { join: { animated: true } })
    .webp({ lossless: true })
    .toBuffer();
}

/** Every variant the issue names, each a good input the image stage must accept. */
export async function goodCorpus() {
  return {
    jpeg: await solid(64, 32, RED).jpeg({ quality: 90 }).toBuffer(),
    cmykJpeg: await solid(64, 32, RED).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer(),
    png16: await solid(64, 32, RED).toColourspace('rgb16').png().toBuffer(),
    palettePngAlpha: await sharp({
      create: { width: 64, height: 32, channels: 4, background: { ...RED, alpha: 0.5 } },
    })
      .png({ palette: true })
      .toBuffer(),
    greyJpeg: await solid(64, 32, RED).toColourspace('b-w').jpeg({ quality: 95 }).toBuffer(),
    exifRotated: await exifRotatedJpeg(),
    webp: await solid(64, 32, RED).webp({ lossless: true }).toBuffer(),
    gif: await solid(64, 32, RED).gif().toBuffer(),
    animatedGif: await animatedGif(),
    animatedWebp: await animatedWebp(),
    p3Jpeg: await solid(64, 32, RED).withIccProfile('p3').jpeg({ quality: 95 }).toBuffer(),
    srgbIccJpeg: await solid(64, 32, RED).withIccProfile('srgb').jpeg({ quality: 95 }).toBuffer(),
    tiff: await solid(64, 32, RED).tiff().toBuffer(),
    avif: await solid(64, 32, RED).avif().toBuffer(),
    wideJpeg: await solid(3000, 1000, RED).jpeg({ quality: 80 }).toBuffer(),
    smallJpeg: await solid(10, 8, RED).jpeg({ quality: 90 }).toBuffer(),
  };
}

export async function badCorpus() {
  const jpeg = await noiseJpeg(128, 96, 5);
  const png = await sharp(noise(64, 48, 9), { raw: { width: 64, height: 48, channels: 3 } })
    .png()
    .toBuffer();
  return {
    empty: new Uint8Array(0),
    text: Buffer.from('this is a caption, not an image\n'),
    html: Buffer.from('<!doctype html><html><body>404 Not Found</body></html>'),
    svg: Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
    ),
    truncatedJpeg: jpeg.subarray(0, Math.floor(jpeg.length * 0.6)),
    headerOnlyJpeg: jpeg.subarray(0, 200),
    truncatedPng: png.subarray(0, Math.floor(png.length * 0.6)),
    corruptJpeg: await corruptJpeg(),
    corruptPng: await corruptPng(),
    bombPng: bombPng(100_000, 100_000),
  };
}

/** Decoded RGB of one pixel, for checking colours after normalisation. */
export async function pixelAt(bytes: Uint8Array, x: number, y: number): Promise<[number, number, number]> {
  const { data, info } = await sharp(bytes)
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * info.channels;
  return [data[i], data[i + 1], data[i + 2]];
}

export function near(actual: readonly number[], expected: readonly number[], tolerance: number): boolean {
  return actual.every((v, i) => Math.abs(v - expected[i]) <= tolerance);
}
