// Loader throughput at model resolution against a PyTorch DataLoader + PIL doing the same pad + resize + to-tensor
// on the same images (read from our LLaVA export), same number of workers, in the same run; prints the ratios.
//   npx tsx bench/loader.ts [--images 160] [--workers 2] [--batch 8] [--res 1024] [--rounds 1] [--only u8,pairs]
//   (--only keys: f32 u8 f16 f32-reuse f16-reuse u8-reuse pairs u8-nocheck, and check for the hash-cost section alone)
//                           [--no-micro] [--keep DIR: keep the bench mixture there, e.g. to profile the loader]
// Runs, like the mixforge CLI, with bin/process-env.js's malloc tuning (re-running itself to set it); the PyTorch
// baseline inherits the same environment. `GLIBC_TUNABLES= npx tsx bench/loader.ts` measures both without it.
// Also measures, single-threaded, the two orders of pad/resize and the u8 → f32 conversion (docs/decisions.md), and
// what checking each row group against the manifest's sha256 costs the loader (ratio with/without, same run).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parquetMetadata } from 'hyparquet';
import sharp from 'sharp';
import { rerunWithProcessEnv } from '../bin/process-env.js';
import { keyedHash64 } from '../core/keyed-hash.ts';
import type { Sample } from '../core/schema.ts';
import { jpegDecoderName } from '../core/turbojpeg.ts';
import { grainyPhoto } from '../demo/images.ts';
import type { Manifest } from '../manifests/manifest.ts';
import { writeSampleShard } from '../manifests/shard-format.ts';
import { rowGroupSpan, sha256Hex, shardHashes } from '../manifests/shard-integrity.ts';
import type { MixtureSpec } from '../manifests/spec-schema.ts';
import { emptyShardStats } from '../manifests/stats.ts';
import { exportLlava } from '../train-bridge/export/llava.ts';
import { mixtureSamples } from '../train-bridge/export/mixture-samples.ts';
import { BatchLoader } from '../train-bridge/loader/batches.ts';
import { StreamingDataset } from '../train-bridge/loader/dataset.ts';
import {
  channelAffine,
  channelTables,
  halfTables,
  type ImageDtype,
  squareRgb,
  writePlanarF16,
  writePlanarF32,
} from '../train-bridge/loader/preprocess.ts';
import { PreprocessPool } from '../train-bridge/loader/preprocess-pool.ts';
import { PairStream } from '../train-bridge/train/pairs.ts';

const { values: args } = parseArgs({
  options: {
    images: { type: 'string', default: '160' },
    workers: { type: 'string', default: '2' },
    batch: { type: 'string', default: '8' },
    res: { type: 'string', default: '1024' },
    rounds: { type: 'string', default: '1' },
    python: { type: 'string', default: '/usr/bin/python3' },
    /** Comma-separated keys of our configurations to run (f32,u8,f16,f32-reuse,f16-reuse,u8-reuse,pairs). */
    only: { type: 'string' },
    'no-micro': { type: 'boolean', default: false },
    /** Skip the PyTorch baseline (where torch is not installed); ratios between our configurations still print. */
    'no-torch': { type: 'boolean', default: false },
    /** Keep the bench mixture and its LLaVA export in this folder (reused by the next run with as many images). */
    keep: { type: 'string' },
  },
});
const N = Number(args.images);
const WORKERS = Number(args.workers);
const BATCH = Number(args.batch);
const R = Number(args.res);

/** CC3M-like photos: 400–640 × 300–460 JPEG q90 with Gaussian grain (so entropy decoding costs what photos cost). */
async function drawPhoto(i: number): Promise<Sample['images'][number]> {
  const width = 400 + ((i * 37) % 241);
  const height = 300 + ((i * 53) % 161);
  const photo = await grainyPhoto({ name: `loader-bench-${i}`, width, height, sigma: 10 });
  const bytes = await photo.jpeg({ quality: 90 }).toBuffer();
  return { bytes: new Uint8Array(bytes), width, height, format: 'jpeg' };
}

async function writeMixture(dir: string): Promise<number> {
  await mkdir(join(dir, 'shards'), { recursive: true });
  const samples: Sample[] = [];
  let bytes = 0;
  for (let i = 0; i < N; i++) {
    const id = `bench/${i}`;
    const image = await drawPhoto(i);
    bytes += image.bytes.byteLength;
    samples.push({
      id,
      source: 'bench/cc3m-like',
      images: [image],
      conversations: [
        { from: 'human', value: '<image>\nDescribe the image.' },
        { from: 'gpt', value: `A synthetic photo number ${i}.` },
      ],
      origin: `bench#${i}`,
      key: keyedHash64(1, 'key', id),
    });
  }
  samples.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const shard = await writeSampleShard(samples, { compression: 'zstd', mixture: 'bench' });
  await writeFile(join(dir, 'shards/shard-00000.parquet'), shard);
  const manifest: Manifest = {
    schema: 'mixforge.manifest/v1',
    sampleSchema: 'mixforge.sample/v1',
    name: 'bench',
    seed: 1,
    specHash: 'bench',
    spec: {} as MixtureSpec,
    inputs: [],
    components: [],
    totals: { rows: N, shards: 1, bytes: shard.byteLength, quarantined: 0 },
    shards: [
      {
        path: 'shards/shard-00000.parquet',
        rows: N,
        bytes: shard.byteLength,
        sha256: createHash('sha256').update(shard).digest('hex'),
        ...shardHashes(shard),
      },
    ],
    quarantine: { path: 'quarantine.parquet', rows: 0, bytes: 0, sha256: '' },
    stats: emptyShardStats(),
  };
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return bytes / N;
}

/** Mean image bytes of a kept bench mixture with N rows, or undefined when there is none to reuse. */
async function keptMixture(manifestPath: string): Promise<number | undefined> {
  try {
    const m = JSON.parse(await readFile(manifestPath, 'utf8')) as Manifest;
    return m.totals.rows === N ? m.shards[0].bytes / N : undefined;
  } catch {
    return undefined;
  }
}

interface Counts {
  images: number;
  batches: number;
  seconds: number;
}

/** End to end (worker start-up included), and steady state: from the first batch on, which start-up is behind. */
interface Run extends Counts {
  steady: Counts;
  /** CPU seconds of this process, all threads (ours only): what a run costs, less sensitive to a busy machine. */
  cpuSeconds?: number;
}

function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1e6;
}

/** Counts batches as they come; `done()` gives both timings. */
function runClock() {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let tFirst = 0;
  let images = 0;
  let batches = 0;
  let firstImages = 0;
  return {
    batch(n: number) {
      images += n;
      batches++;
      if (batches === 1) {
        tFirst = performance.now();
        firstImages = images;
      }
    },
    done(): Run {
      const now = performance.now();
      return {
        images,
        batches,
        seconds: (now - t0) / 1000,
        steady: { images: images - firstImages, batches: batches - 1, seconds: (now - tFirst) / 1000 },
        cpuSeconds: cpuSecondsSince(cpu0),
      };
    },
  };
}

async function runOurs(
  manifest: string,
  dtype: ImageDtype,
  reuseBuffers = false,
  checkRowGroups = true,
): Promise<Run> {
  const clock = runClock();
  const pool = new PreprocessPool(WORKERS);
  const loader = new BatchLoader(new StreamingDataset(manifest, { seed: 1, checkRowGroups }), {
    batchSize: BATCH,
    resolution: R,
    dtype,
    pool,
    reuseBuffers,
  });
  for await (const b of loader) clock.batch(b.images.shape[0]);
  const run = clock.done();
  await pool.close();
  return run;
}

/** The training loop's input: `mixforge train`'s pair stream (captions tokenised, u8 NHWC, two reused buffers). */
async function runPairs(manifest: string): Promise<Run> {
  const clock = runClock();
  const dataset = new StreamingDataset(manifest, { seed: 1 });
  await dataset.open();
  const pool = new PreprocessPool(WORKERS);
  const pairs = new PairStream(dataset, {
    resolution: R,
    text: { buckets: 4096, embedDim: 64, maxTokens: 64 },
    pool,
  });
  // One epoch's worth in full batches (the stream rolls over into the next epoch), one batch prefetched as the
  // trainer does.
  const total = Math.floor(N / BATCH);
  let next = pairs.next(BATCH);
  for (let b = 0; b < total; b++) {
    const batch = await next;
    if (b + 1 < total) next = pairs.next(BATCH);
    clock.batch(batch.sampleIds.length);
  }
  const run = clock.done();
  await pool.close();
  return run;
}

function runTorch(json: string, root: string): Run {
  const r = spawnSync(
    args.python,
    [
      join(import.meta.dirname, 'loader_torch.py'),
      '--json',
      json,
      '--root',
      root,
      '--workers',
      String(WORKERS),
      '--batch',
      String(BATCH),
      '--res',
      String(R),
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`loader_torch.py failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Run;
}

/** Single-thread costs of the building blocks, on the first 24 images. */
async function microbench(photos: Uint8Array[]): Promise<void> {
  sharp.concurrency(1);
  const time = async (name: string, f: (b: Uint8Array) => Promise<unknown>) => {
    await f(photos[0]);
    const t0 = performance.now();
    for (const b of photos) await f(b);
    const ms = (performance.now() - t0) / photos.length;
    console.log(
      `  ${name.padEnd(58)} ${ms.toFixed(1).padStart(6)} ms/img  ${(1000 / ms).toFixed(1).padStart(6)} img/s`,
    );
    return ms;
  };
  console.log(`single thread, ${photos.length} images, ${R}²:`);
  await time('decode only', (b) => sharp(b).raw().toBuffer());
  await time('pad at source size, then cubic resize (our order, LLaVA semantics)', (b) =>
    squareRgb(b, R, [0, 0, 0], 'cubic'),
  );
  await time("resize then pad (sharp fit 'contain', cubic)", (b) =>
    sharp(b)
      .resize(R, R, { fit: 'contain', background: { r: 0, g: 0, b: 0 }, kernel: 'cubic' })
      .raw()
      .toBuffer(),
  );
  const pixels = (await squareRgb(photos[0], R, [0, 0, 0], 'cubic')).pixels;
  const tables = channelTables([0, 0, 0], [1, 1, 1]);
  const out = new Float32Array(3 * R * R);
  const loops = 20;
  let t0 = performance.now();
  for (let k = 0; k < loops; k++) writePlanarF32(pixels, channelAffine([0, 0, 0], [1, 1, 1]), out, 0);
  console.log(
    `  u8 HWC → f32 CHW, multiply-add (ours): ${((performance.now() - t0) / loops).toFixed(2)} ms/img`,
  );
  const half = new Uint16Array(3 * R * R);
  const halfT = halfTables(tables);
  t0 = performance.now();
  for (let k = 0; k < loops; k++) writePlanarF16(pixels, halfT, half, 0);
  console.log(
    `  u8 HWC → f16 CHW, table (ours):       ${((performance.now() - t0) / loops).toFixed(2)} ms/img`,
  );
  t0 = performance.now();
  for (let k = 0; k < loops; k++)
    for (let i = 0, j = 0; i < R * R; i++, j += 3) {
      out[i] = tables[0][pixels[j]];
      out[R * R + i] = tables[1][pixels[j + 1]];
      out[2 * R * R + i] = tables[2][pixels[j + 2]];
    }
  console.log(
    `  u8 HWC → f32 CHW, f32 table:          ${((performance.now() - t0) / loops).toFixed(2)} ms/img`,
  );
  t0 = performance.now();
  const hw = R * R;
  for (let k = 0; k < loops; k++)
    for (let i = 0, j = 0; i < hw; i++, j += 3) {
      out[i] = pixels[j] / 255;
      out[hw + i] = pixels[j + 1] / 255;
      out[2 * hw + i] = pixels[j + 2] / 255;
    }
  console.log(
    `  u8 HWC → f32 CHW, naive divide:       ${((performance.now() - t0) / loops).toFixed(2)} ms/img`,
  );
}

/**
 * What checking every row group against the manifest's sha256 costs: the dataset alone (read + hash + decode, no
 * image preprocessing: the worst case for the ratio), with and without the check, alternated, best of 5 each; plus
 * the bytes the whole-group reads add over the loader's columns (origin and key ride along so one hash covers a read).
 */
async function checkCost(manifest: string, shardPath: string): Promise<void> {
  const pass = async (checkRowGroups: boolean) => {
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    let n = 0;
    for await (const _ of new StreamingDataset(manifest, { seed: 1, checkRowGroups })) n++;
    if (n !== N) throw new Error(`dataset gave ${n} samples, expected ${N}`);
    return { wall: (performance.now() - t0) / 1000, cpu: cpuSecondsSince(cpu0) };
  };
  const inf = Number.POSITIVE_INFINITY;
  const best = { on: { wall: inf, cpu: inf }, off: { wall: inf, cpu: inf } };
  const keep = (b: { wall: number; cpu: number }, r: { wall: number; cpu: number }) => {
    b.wall = Math.min(b.wall, r.wall);
    b.cpu = Math.min(b.cpu, r.cpu);
  };
  for (let k = 0; k < 15; k++) {
    keep(best.off, await pass(false));
    keep(best.on, await pass(true));
  }
  const shard = await readFile(shardPath);
  const meta = parquetMetadata(
    shard.buffer.slice(shard.byteOffset, shard.byteOffset + shard.byteLength) as ArrayBuffer,
  );
  let group = 0;
  let extra = 0;
  meta.row_groups.forEach((rg, g) => {
    const span = rowGroupSpan(meta, g);
    group += span.end - span.start;
    for (const c of rg.columns)
      if (c.meta_data && ['origin', 'key'].includes(c.meta_data.path_in_schema[0]))
        extra += Number(c.meta_data.total_compressed_size);
  });
  const hash = await hashCost(shardPath);
  console.log(
    `row-group sha256 check, dataset only (read + decode, no preprocessing), checked / unchecked, best of 15: CPU seconds ×${(best.on.cpu / best.off.cpu).toFixed(3)} (${((1e6 * best.off.cpu) / N).toFixed(0)} → ${((1e6 * best.on.cpu) / N).toFixed(0)} µs/sample), wall ×${(best.on.wall / best.off.wall).toFixed(3)}; sha256 ${hash.mbPerCpuSecond.toFixed(0)} MB per CPU second = ${hash.usPerSample.toFixed(1)} µs/sample; whole-group reads add ${((100 * extra) / (group - extra)).toFixed(2)} % bytes over the loader's columns`,
  );
}

/** sha256 throughput on this machine (CPU time, best of 5) and what hashing one sample's row-group bytes costs. */
async function hashCost(shardPath: string): Promise<{ mbPerCpuSecond: number; usPerSample: number }> {
  const shard = await readFile(shardPath);
  let best = Number.POSITIVE_INFINITY;
  for (let k = 0; k < 5; k++) {
    const cpu0 = process.cpuUsage();
    sha256Hex(shard);
    best = Math.min(best, cpuSecondsSince(cpu0));
  }
  return { mbPerCpuSecond: shard.byteLength / 1e6 / best, usPerSample: (1e6 * best) / N };
}

async function main(): Promise<void> {
  console.log(
    `GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES ?? '(unset)'} for both loaders; JPEG decoder: ${jpegDecoderName()}`,
  );
  const dir = args.keep ?? (await mkdtemp(join(tmpdir(), 'mixforge-loader-bench-')));
  try {
    const manifest = join(dir, 'mix', 'manifest.json');
    const exp = join(dir, 'llava');
    // A kept folder with a mixture of the same size is reused (the images are a pure function of their index).
    const kept = args.keep ? await keptMixture(manifest) : undefined;
    const meanBytes = kept ?? (await writeMixture(join(dir, 'mix')));
    if (kept === undefined) await exportLlava(join(dir, 'mix'), { dest: exp });
    console.log(
      'img/s end to end (worker start-up included) | steady state (from the first batch on); ×: vs PyTorch',
    );
    console.log(
      `${N} CC3M-like JPEGs (400–640 × 300–460, q90, mean ${(meanBytes / 1024).toFixed(0)} KiB), ${R}², batch ${BATCH}, ${WORKERS} workers each`,
    );
    const photos: Uint8Array[] = [];
    for await (const s of mixtureSamples(join(dir, 'mix')))
      if (photos.length < 24) photos.push(s.images[0].bytes);
    // Ours, in the order they run; --only picks some by key. PyTorch runs first in every round.
    const configs: { key: string; name: string; run: () => Promise<Run> }[] = [
      { key: 'f32', name: 'mixforge BatchLoader, f32 NCHW', run: () => runOurs(manifest, 'f32') },
      {
        key: 'u8',
        name: 'mixforge BatchLoader, u8 NHWC (normalise on GPU)',
        run: () => runOurs(manifest, 'u8'),
      },
      { key: 'f16', name: 'mixforge BatchLoader, f16 NCHW', run: () => runOurs(manifest, 'f16') },
      // What a training loop that uploads each batch before asking for the next can use.
      {
        key: 'f32-reuse',
        name: 'mixforge BatchLoader, f32 NCHW, reuseBuffers',
        run: () => runOurs(manifest, 'f32', true),
      },
      {
        key: 'f16-reuse',
        name: 'mixforge BatchLoader, f16 NCHW, reuseBuffers',
        run: () => runOurs(manifest, 'f16', true),
      },
      {
        key: 'u8-reuse',
        name: 'mixforge BatchLoader, u8 NHWC, reuseBuffers',
        run: () => runOurs(manifest, 'u8', true),
      },
      { key: 'pairs', name: 'mixforge train input (PairStream), u8 NHWC', run: () => runPairs(manifest) },
      // The baseline of the integrity check's cost: the same loader with row-group hashes not checked.
      {
        key: 'u8-nocheck',
        name: 'mixforge BatchLoader, u8 NHWC, hashes not checked',
        run: () => runOurs(manifest, 'u8', false, false),
      },
    ];
    const only = args.only ? new Set(args.only.split(',')) : undefined;
    const chosen = configs.filter((c) => !only || only.has(c.key));
    const rate = (c: Counts) => c.images / c.seconds;
    for (let round = 0; round < (chosen.length ? Number(args.rounds) : 0); round++) {
      const torch = args['no-torch'] ? undefined : runTorch(join(exp, 'mixture.json'), exp);
      const results: [string, Run][] = torch ? [['PyTorch DataLoader + PIL, f32 NCHW', torch]] : [];
      // Odd rounds run ours in reverse (ABBA), so warm-up and drift on a busy machine do not favour one side.
      const order = round % 2 === 0 ? chosen : [...chosen].reverse();
      const runs = new Map<string, Run>();
      for (const c of order) runs.set(c.key, await c.run());
      for (const c of chosen) results.push([c.name, runs.get(c.key) as Run]);
      console.log(`round ${round + 1}${round % 2 === 1 ? ' (ours in reverse order)' : ''}:`);
      const byKey = runs;
      const [checked, unchecked] = [byKey.get('u8'), byKey.get('u8-nocheck')];
      if (checked?.cpuSeconds) {
        // The check's cost does not depend on the load of the machine as wall time does: hash CPU per image over
        // the loader's CPU per image.
        const { usPerSample } = await hashCost(join(dir, 'mix', 'shards/shard-00000.parquet'));
        const loaderUs = (1e6 * checked.cpuSeconds) / checked.images;
        console.log(
          `  row-group sha256 check: ${usPerSample.toFixed(1)} µs CPU per image of the loader's ${loaderUs.toFixed(0)} µs CPU per image (u8) = ${((100 * usPerSample) / loaderUs).toFixed(2)} %`,
        );
      }
      if (checked && unchecked)
        console.log(
          `  row-group sha256 check, full loader (u8), checked / unchecked: CPU seconds ×${((checked.cpuSeconds ?? 0) / (unchecked.cpuSeconds ?? 1)).toFixed(3)}, img/s ×${(rate(checked) / rate(unchecked)).toFixed(3)}, steady ×${(rate(checked.steady) / rate(unchecked.steady)).toFixed(3)}`,
        );
      // CPU per image (all threads / all worker processes): what the wall-clock ratio tends to on a machine whose
      // cores are all busy, and far less sensitive than it to other load.
      const cpuMs = (r: Run) => (r.cpuSeconds === undefined ? undefined : (1000 * r.cpuSeconds) / r.images);
      for (const [name, r] of results) {
        const cpu = cpuMs(r);
        const torchCpu = torch && cpuMs(torch);
        console.log(
          `  ${name.padEnd(48)} ${rate(r).toFixed(1).padStart(6)} img/s ${(r.batches / r.seconds).toFixed(2).padStart(6)} batches/s${torch ? ` ×${(rate(r) / rate(torch)).toFixed(2)}` : ''}` +
            ` | steady ${rate(r.steady).toFixed(1).padStart(6)} img/s${torch ? ` ×${(rate(r.steady) / rate(torch.steady)).toFixed(2)}` : ''}` +
            (cpu === undefined
              ? ''
              : ` | CPU ${cpu.toFixed(2).padStart(6)} ms/img${torchCpu ? ` ×${(torchCpu / cpu).toFixed(2)}` : ''}`),
        );
      }
    }
    if (!only || only.has('check')) await checkCost(manifest, join(dir, 'mix', 'shards/shard-00000.parquet'));
    if (!args['no-micro']) await microbench(photos);
  } finally {
    if (!args.keep) await rm(dir, { recursive: true, force: true });
  }
}

if (!(await rerunWithProcessEnv())) await main();
