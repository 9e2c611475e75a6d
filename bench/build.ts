// Build throughput and memory. Prints, from one run on one machine:
//  1. samples per CPU-second of `build` (in-process executor, every stage) against bare sharp doing only
//     decode + JPEG encode of the same images (ratio), with the default spec (originals kept) and with a
//     max_side that forces every image to be resized and re-encoded;
//  2. peak RSS of a build of N vs 10·N samples (memory must not grow with the sample count: ratio < 1.3).
// Usage: npx tsx bench/build.ts [--n 300] [--images 100] [--cpu-prof DIR] [--keep DIR]
//   --cpu-prof DIR: V8 CPU profiles of each build's main thread (for chrome://inspect or speedscope);
//   --keep DIR: generate inputs, specs and outputs in DIR and leave them there (to rerun builds by hand).
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { rerunWithProcessEnv } from '../bin/process-env.js';
import { writeParquet } from '../core/parquet/write.ts';
import { grainyPhoto } from '../demo/images.ts';
import { RECAP_FIELDS } from '../dev/recap-parquet.ts';
import { jpegEncoderOptions } from '../transforms/image-normalise.ts';

/** The value after `--name`, if given. */
const option = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const arg = (name: string, dflt: number) => {
  const v = option(name);
  return v === undefined ? dflt : Number(v);
};

/** CC3M-like JPEGs (400–640 × 300–460, q90), as in BASELINES.md. */
async function makeImages(n: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const photo = await grainyPhoto({
      name: `bench-${i}`,
      width: 400 + ((i * 37) % 241),
      height: 300 + ((i * 53) % 161),
      sigma: 40,
    });
    const noisy = await photo.jpeg({ quality: 90 }).toBuffer();
    out.push(new Uint8Array(noisy));
  }
  return out;
}

async function writeRecap(dir: string, images: Uint8Array[], rows: number): Promise<void> {
  await mkdir(join(dir, 'data'), { recursive: true });
  const all = Array.from({ length: rows }, (_, i) => ({
    id: `bench-${i}`,
    image: { bytes: images[i % images.length], path: `${i}.jpg` },
    conversations: [
      { from: 'human', value: '<image>\nWhat is happening in this image?' },
      {
        from: 'gpt',
        value: `Sample ${i}: a dense caption describing a gradient scene with several coloured boxes.`,
      },
    ],
    data_source: 'bench',
  }));
  // Several files of ≤ 500 rows keep the generator's own memory small.
  for (let f = 0; f * 500 < rows; f++) {
    const bytes = await writeParquet({
      fields: RECAP_FIELDS,
      rows: all.slice(f * 500, (f + 1) * 500),
      rowGroupSize: 100,
    });
    await writeFile(join(dir, 'data', `train-${String(f).padStart(5, '0')}.parquet`), bytes);
  }
}

function spec(data: string, maxSide: number): string {
  return `name: bench\nseed: 1\noutput: {shard_rows: 100}\nimages: {max_side: ${maxSide}}\ncomponents:\n  - name: recap\n    source: {format: llava-recap, uris: ["${data}/data/*.parquet"]}\n    transform: triplet\n`;
}

/** Runs one build in a child process; returns its rows, CPU seconds and wall seconds of the build alone (not module
 * loading; all threads), the CPU seconds of loading the modules a build loads on first use, and the process's peak
 * RSS. */
function runBuild(
  specFile: string,
  out: string,
): { rows: number; cpu: number; loadCpu: number; wall: number; maxRssMb: number } {
  // The modules jobs import when they first run (~1.7 CPU-s under tsx on the dev box) are loaded before the clock
  // starts, as sharp is for the baseline: a fixed cost per process, not per sample. Their CPU is reported apart.
  const script = `
    import { loadSpec } from './manifests/spec.ts';
    import { makeBuildContext } from './pipelines/context.ts';
    import { runBuildInProcess } from './pipelines/executor-inprocess.ts';
    const spec = await loadSpec(${JSON.stringify(specFile)}, { env: {} });
    const l0 = process.cpuUsage();
    await Promise.all([
      import('./pipelines/record-processor.ts'),
      import('./manifests/shard-format.ts'),
      import('./manifests/quarantine-table.ts'),
      import('./sources/registry.ts').then((r) => r.getReader('llava-recap')),
    ]);
    const l = process.cpuUsage(l0);
    const t = Date.now();
    const c0 = process.cpuUsage();
    const m = await runBuildInProcess(makeBuildContext(spec, ${JSON.stringify(out)}));
    const c = process.cpuUsage(c0);
    const u = process.resourceUsage();
    console.log(JSON.stringify({ rows: m.totals.rows, cpu: (c.user + c.system) / 1e6, loadCpu: (l.user + l.system) / 1e6, wall: (Date.now() - t) / 1000, maxRssMb: u.maxRSS / 1024 }));`;
  const profDir = option('cpu-prof');
  const profile = profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
  const r = spawnSync(
    process.execPath,
    [...profile, '--import', 'tsx', '--input-type=module', '-e', script],
    {
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) throw new Error(`build failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) as string);
}

/** Bare sharp: decode + JPEG encode (q95, the pipeline's encoder options), single thread, CPU seconds per image. */
async function bareSharp(images: Uint8Array[], rows: number): Promise<number> {
  sharp.concurrency(1);
  const t = process.cpuUsage();
  for (let i = 0; i < rows; i++)
    await sharp(images[i % images.length])
      .jpeg(jpegEncoderOptions(95))
      .toBuffer();
  const d = process.cpuUsage(t);
  return (d.user + d.system) / 1e6;
}

async function main(): Promise<void> {
  console.log(`GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES ?? '(unset)'}`);
  const n = arg('n', 300);
  const distinct = arg('images', 100);
  const keep = option('keep');
  const tmp = keep ?? (await mkdtemp(join(tmpdir(), 'mixforge-bench-build-')));
  await mkdir(tmp, { recursive: true });
  try {
    const images = await makeImages(distinct);
    const small = join(tmp, 'small');
    const big = join(tmp, 'big');
    await writeRecap(small, images, n);
    await writeRecap(big, images, 10 * n);
    for (const [name, data, side] of [
      ['small', small, 2048],
      ['small-resize', small, 320],
      ['big', big, 2048],
    ] as const)
      await writeFile(join(tmp, `${name}.yaml`), spec(data, side));

    const sharpCpu = await bareSharp(images, n);
    const keep = runBuild(join(tmp, 'small.yaml'), join(tmp, 'out-small'));
    const resize = runBuild(join(tmp, 'small-resize.yaml'), join(tmp, 'out-resize'));
    const large = runBuild(join(tmp, 'big.yaml'), join(tmp, 'out-big'));
    const perCpu = (rows: number, cpu: number) => rows / cpu;
    const baseline = perCpu(n, sharpCpu);
    console.log(`bare sharp decode+encode q95: ${baseline.toFixed(1)} images per CPU-second (${n} images)`);
    for (const [label, r] of [
      ['build, originals kept (default)', keep],
      ['build, every image resized + re-encoded', resize],
      [`build, 10× samples (${10 * n})`, large],
    ] as const) {
      console.log(
        `${label}: ${r.rows} rows, ${perCpu(r.rows, r.cpu).toFixed(1)} samples per CPU-second, ${(r.rows / r.wall).toFixed(1)} samples/s wall, ratio vs bare sharp ${(perCpu(r.rows, r.cpu) / baseline).toFixed(2)} (${(perCpu(r.rows, r.cpu + r.loadCpu) / baseline).toFixed(2)} counting the ${r.loadCpu.toFixed(2)} CPU-s of loading the build's modules), peak RSS ${r.maxRssMb.toFixed(0)} MB`,
      );
    }
    console.log(
      `peak RSS 10× samples / 1×: ${(large.maxRssMb / keep.maxRssMb).toFixed(2)} (target < 1.3); time ratio ${(large.wall / keep.wall).toFixed(1)}× (≈10× expected)`,
    );
  } finally {
    if (keep === undefined) await rm(tmp, { recursive: true, force: true });
  }
}

// Like the mixforge CLI: with bin/process-env.js's settings (the builds run in children, which inherit them).
if (!(await rerunWithProcessEnv())) await main();
