// Draws small, real, varied images with sharp for demo data and fixtures (JPEG, PNG, WebP).
import sharp, { type Sharp } from 'sharp';
import { keyedHash64 } from '../core/keyed-hash.ts';

export type DemoImageFormat = 'jpeg' | 'png' | 'webp';

/** A deterministic picture for `name`: gradient background plus a few coloured rectangles. */
export async function drawDemoImage(
  name: string,
  format: DemoImageFormat,
  size?: { width: number; height: number },
): Promise<Uint8Array> {
  const h = keyedHash64(0, 'demo-image', name);
  const width = size?.width ?? 160 + Number(h % 200n);
  const height = size?.height ?? 120 + Number((h >> 16n) % 160n);
  const hue = Number((h >> 32n) % 360n);
  const rects = Array.from({ length: 3 }, (_, i) => {
    const r = Number((h >> BigInt(8 * i)) % 97n) / 97;
    return `<rect x="${Math.floor(r * width * 0.6)}" y="${Math.floor((1 - r) * height * 0.5)}" width="${Math.floor(width * 0.3)}" height="${Math.floor(height * 0.3)}" fill="hsl(${(hue + i * 90) % 360},70%,50%)"/>`;
  }).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="hsl(${hue},60%,80%)"/><stop offset="1" stop-color="hsl(${(hue + 180) % 360},60%,30%)"/></linearGradient></defs>
<rect width="100%" height="100%" fill="url(#g)"/>${rects}</svg>`;
  const img = sharp(Buffer.from(svg));
  const out =
    format === 'jpeg' ? img.jpeg({ quality: 90 }) : format === 'png' ? img.png() : img.webp({ quality: 85 });
  return new Uint8Array(await out.toBuffer());
}

/**
 * A photo-like picture: `base` (or the demo picture for `name`) with Gaussian grain laid over it, so that encoded
 * sizes and entropy-decoding cost are those of real photos (a smooth synthetic picture compresses unrealistically
 * well). Returns the sharp pipeline; the caller picks the encoding.
 */
export async function grainyPhoto(opts: {
  name: string;
  width: number;
  height: number;
  /** Grain strength (Gaussian sigma on a 0–255 scale). */
  sigma: number;
  base?: Buffer | Uint8Array;
}): Promise<Sharp> {
  const { width, height, sigma } = opts;
  const base = opts.base ?? (await drawDemoImage(opts.name, 'png', { width, height }));
  const grain = await sharp({
    create: {
      width,
      height,
      channels: 3,
      background: '#808080',
      noise: { type: 'gaussian', mean: 128, sigma },
    },
  })
    .png()
    .toBuffer();
  return sharp(base).composite([{ input: grain, blend: 'overlay' }]);
}
