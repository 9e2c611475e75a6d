// Images per core of the full per-sample transform (processRecord: normalise → triplet → validate → filters →
// image normalisation on the worker pool → dedup key) against bare sharp doing only decode + JPEG encode of the
// same images, in the same run. Also compares JPEG encoder settings (speed and size) for docs/decisions.md.
//   npx tsx bench/transform-images.ts [--images 200] [--passes 3] [--workers N]
// Per core = per CPU-second of this process (all threads), so other load on a shared box does not skew it;
// wall-clock images/s per worker are printed too.
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import sharp, { type JpegOptions } from 'sharp';
import { keyedHash64 } from '../core/keyed-hash.ts';
import type { RawRecord } from '../core/schema.ts';
import { grainyPhoto } from '../demo/images.ts';
import { ComponentTransformOptionsSchema } from '../transforms/component-options.ts';
import { jpegEncoderOptions } from '../transforms/image-normalise.ts';
import { createImagePool } from '../transforms/image-pool.ts';
import { processRecord } from '../transforms/process.ts';

const { values: args } = parseArgs({
  options: {
    images: { type: 'string', default: '200' },
    passes: { type: 'string', default: '3' },
    workers: { type: 'string', default: String(availableParallelism()) },
  },
});
const N = Number(args.images);
const PASSES = Number(args.passes);
const WORKERS = Number(args.workers);

const rand = (name: string, i: number, n: number) =>
  Number(keyedHash64(0, `bench-${name}`, String(i)) % BigInt(n));

/** CC3M-like photo: 400–640 × 300–460, smooth colour field plus grain, JPEG q90 (as in BASELINES.md). */
async function photo(i: number, size?: { width: number; height: number }): Promise<Buffer> {
  const width = size?.width ?? 400 + rand('w', i, 241);
  const height = size?.height ?? 300 + rand('h', i, 161);
  // A 12×9 random colour grid, blown up with a smooth kernel, gives photo-like low-frequency content.
  const grid = Buffer.alloc(12 * 9 * 3);
  for (let k = 0; k < grid.length; k++) grid[k] = rand('grid', i * 1000 + k, 256);
  const field = await sharp(grid, { raw: { width: 12, height: 9, channels: 3 } })
    .resize(width, height, { kernel: 'cubic', fit: 'fill' })
    .png()
    .toBuffer();
  const grainy = await grainyPhoto({ name: `photo-${i}`, width, height, sigma: 18, base: field });
  return grainy.jpeg({ quality: 90 }).toBuffer();
}

async function cc3mCorpus(n: number): Promise<Buffer[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => photo(i)));
}

/** What a mixed instruction set brings: mostly photos, plus alpha PNGs, EXIF-rotated, huge, CMYK and GIF. */
async function mixedCorpus(n: number): Promise<{ bytes: Buffer; kind: string }[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const k = i % 20;
      const base = await photo(i + 10_000);
      if (k < 10) return { bytes: base, kind: 'jpeg' };
      if (k < 13) return { bytes: await sharp(base).ensureAlpha(0.6).png().toBuffer(), kind: 'png-alpha' };
      if (k < 15)
        return {
          bytes: await sharp(base).jpeg({ quality: 90 }).withMetadata({ orientation: 6 }).toBuffer(),
          kind: 'exif-6',
        };
      if (k < 17)
        return {
          bytes: await photo(i, { width: 2600 + rand('big', i, 800), height: 1800 }),
          kind: 'over-2048',
        };
      if (k < 19)
        return {
          bytes: await sharp(base).toColourspace('cmyk').jpeg({ quality: 90 }).toBuffer(),
          kind: 'cmyk',
        };
      return { bytes: await sharp(base).gif().toBuffer(), kind: 'gif' };
    }),
  );
}

interface Timing {
  images: number;
  cpuS: number;
  wallS: number;
}

async function timed(images: number, work: () => Promise<void>): Promise<Timing> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await work();
  const cpu = process.cpuUsage(cpu0);
  return { images, cpuS: (cpu.user + cpu.system) / 1e6, wallS: (performance.now() - t0) / 1000 };
}

/** Runs fn over items with `limit` in flight. */
async function eachLimited<T>(items: T[], limit: number, fn: (x: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

const perCpu = (t: Timing) => t.images / t.cpuS;
const perWorkerWall = (t: Timing, workers: number) => t.images / t.wallS / workers;

function best(ts: Timing[]): Timing {
  return ts.reduce((a, b) => (perCpu(b) > perCpu(a) ? b : a));
}

function records(images: Buffer[]): RawRecord[] {
  return images.map((bytes, i) => ({
    id: `GCC_train_${String(i).padStart(9, '0')}`,
    source: 'llava-recap/cc3m',
    origin: `bench.parquet#row=${i}`,
    images: [{ bytes }],
    conversations: [
      { from: 'human', value: '<image>\nWhat is happening in this image? Describe it in detail.' },
      {
        from: 'gpt',
        value: `A dense caption for picture ${i}: ${'a photo with soft colour fields and grain. '.repeat(6)}`,
      },
    ],
    meta: {},
  }));
}

async function compare(
  label: string,
  images: Buffer[],
): Promise<{ ratio: number; base: Timing; full: Timing }> {
  const options = ComponentTransformOptionsSchema.parse({ transform: 'triplet', seed: 17 });
  const recs = records(images);
  const pool = createImagePool({ size: WORKERS });
  // Warm-up: start the workers and touch every image once.
  await Promise.all(
    recs.slice(0, WORKERS * 2).map((r) => processRecord(r, { component: 'b', options, images: pool })),
  );
  await eachLimited(images.slice(0, 20), WORKERS, (b) => sharp(b).jpeg(jpegEncoderOptions(95)).toBuffer());
  const bases: Timing[] = [];
  const fulls: Timing[] = [];
  let kept = 0;
  for (let p = 0; p < PASSES; p++) {
    bases.push(
      await timed(images.length, () =>
        eachLimited(images, WORKERS, (b) => sharp(b).jpeg(jpegEncoderOptions(95)).toBuffer()),
      ),
    );
    kept = 0;
    fulls.push(
      await timed(images.length, () =>
        eachLimited(recs, WORKERS * 4, async (r) => {
          const o = await processRecord(r, { component: 'b', options, images: pool });
          if (o.kind === 'kept') kept++;
        }),
      ),
    );
  }
  await pool.close();
  if (kept !== images.length) throw new Error(`${label}: only ${kept} of ${images.length} samples kept`);
  const base = best(bases);
  const full = best(fulls);
  const ratio = perCpu(full) / perCpu(base);
  console.log(
    `${label}: bare sharp decode+encode q95 ${perCpu(base).toFixed(1)} img per CPU-s (${perWorkerWall(base, WORKERS).toFixed(1)} img/s wall per worker); ` +
      `full transform ${perCpu(full).toFixed(1)} img per CPU-s (${perWorkerWall(full, WORKERS).toFixed(1)} img/s wall per worker); ratio ${ratio.toFixed(2)}`,
  );
  return { ratio, base, full };
}

/** Decode + encode single-threaded with sharp's defaults vs our settings: speed and bytes. */
async function encoderSettings(images: Buffer[]): Promise<void> {
  const settings: [string, JpegOptions][] = [
    ['sharp defaults (optimiseCoding on)', { quality: 95 }],
    ['mozjpeg preset (trellis, deringing, scans, progressive)', { quality: 95, mozjpeg: true }],
    ['ours (all four off)', jpegEncoderOptions(95)],
  ];
  for (const [name, opts] of settings) {
    let bytes = 0;
    const ts: Timing[] = [];
    for (let p = 0; p < PASSES; p++) {
      bytes = 0;
      ts.push(
        await timed(images.length, async () => {
          for (const b of images) bytes += (await sharp(b).jpeg(opts).toBuffer()).length;
        }),
      );
    }
    const t = best(ts);
    console.log(
      `  encoder ${name}: ${perCpu(t).toFixed(1)} img per CPU-s, ${(t.images / t.wallS).toFixed(1)} img/s wall, mean ${(bytes / images.length / 1024).toFixed(1)} KiB`,
    );
  }
}

console.log(
  `${N} images, ${PASSES} passes (best per CPU-second), ${WORKERS} image workers, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}, sharp ${sharp.versions.sharp} / libvips ${sharp.versions.vips}`,
);
const cc3m = await cc3mCorpus(N);
console.log(`cc3m-like corpus: mean ${(cc3m.reduce((n, b) => n + b.length, 0) / N / 1024).toFixed(1)} KiB`);
const mixed = await mixedCorpus(N);
await compare('cc3m-like JPEGs (kept as is)', cc3m);
await compare(
  'mixed (50% photos; alpha PNG, EXIF 6, >2048, CMYK, GIF re-encoded)',
  mixed.map((m) => m.bytes),
);
console.log('JPEG encoder settings, decode + q95 encode, one at a time:');
await encoderSettings(cc3m.slice(0, Math.min(100, N)));
