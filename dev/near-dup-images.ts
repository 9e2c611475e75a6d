// The generated image corpus of bench/near-dedup.ts: diverse originals (random colour fields with grain, or the demo
// drawings: gradient plus rectangles) and, per original, the edits a near-duplicate detector must see through.
import sharp from 'sharp';
import { keyedHash64 } from '../core/keyed-hash.ts';
import { drawDemoImage, grainyPhoto } from '../demo/images.ts';

export const EDITS = ['resize', 'jpeg-q40', 'webp-q70', 'crop-4%', 'greyscale', 'text-overlay'] as const;
export type Edit = (typeof EDITS)[number];

const rand = (what: string, i: number, n: number) =>
  Number(keyedHash64(0, `bench/near-dedup/${what}`, String(i)) % BigInt(n));

/** Original i: a random g×h colour grid blown up smoothly, with grain (2 in 3), or a demo drawing (1 in 3). */
export async function original(i: number): Promise<Buffer> {
  const width = 320 + rand('w', i, 321);
  const height = 240 + rand('h', i, 241);
  if (i % 3 === 2) {
    // The demo drawings share one light-to-dark diagonal; turn and mirror them so that their layouts differ too.
    const png = await drawDemoImage(`near-dedup-${i}`, 'png', { width, height });
    const turned = sharp(png).rotate(90 * rand('turn', i, 4));
    return (rand('flip', i, 2) ? turned.flop() : turned).jpeg({ quality: 90 }).toBuffer();
  }
  const gw = 3 + rand('gw', i, 14);
  const gh = 3 + rand('gh', i, 10);
  const grid = Buffer.alloc(gw * gh * 3);
  for (let k = 0; k < grid.length; k++) grid[k] = rand('grid', i * 10_000 + k, 256);
  const field = await sharp(grid, { raw: { width: gw, height: gh, channels: 3 } })
    .resize(width, height, { kernel: 'cubic', fit: 'fill' })
    .png()
    .toBuffer();
  const grainy = await grainyPhoto({ name: `near-dedup-${i}`, width, height, sigma: 14, base: field });
  return grainy.jpeg({ quality: 90 }).toBuffer();
}

/** The edited copy of an image. */
export async function edit(bytes: Buffer, e: Edit, i: number): Promise<Buffer> {
  const meta = await sharp(bytes).metadata();
  const w = meta.width;
  const h = meta.height;
  switch (e) {
    case 'resize':
      return sharp(bytes)
        .resize(Math.round(w * 0.55), Math.round(h * 0.55))
        .jpeg({ quality: 85 })
        .toBuffer();
    case 'jpeg-q40':
      return sharp(bytes).jpeg({ quality: 40 }).toBuffer();
    case 'webp-q70':
      return sharp(bytes).webp({ quality: 70 }).toBuffer();
    case 'crop-4%': {
      // 4 % off the width and height, split between the sides as the sample's hash says.
      const dx = Math.round(w * 0.04);
      const dy = Math.round(h * 0.04);
      const left = rand('crop-l', i, dx + 1);
      const top = rand('crop-t', i, dy + 1);
      return sharp(bytes)
        .extract({ left, top, width: w - dx, height: h - dy })
        .jpeg({ quality: 90 })
        .toBuffer();
    }
    case 'greyscale':
      return sharp(bytes).greyscale().jpeg({ quality: 90 }).toBuffer();
    case 'text-overlay': {
      const size = Math.max(12, Math.round(h / 16));
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><text x="${Math.round(w * 0.05)}" y="${h - size}" font-family="sans-serif" font-size="${size}" fill="white" stroke="black" stroke-width="1">© photo ${i} stock</text></svg>`;
      return sharp(bytes)
        .composite([{ input: Buffer.from(svg) }])
        .jpeg({ quality: 90 })
        .toBuffer();
    }
  }
}
