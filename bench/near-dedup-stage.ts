// Near-duplicate removal on synthetic keys files: its jobs (near-dedup-plan, one near-dedup-band per band,
// near-dedup) run one after another as one fleet worker would, with wall and CPU time and peak RSS for N samples
// (a tenth of them planted near-duplicates: a few signature bytes and image bits changed), so the memory of a band
// job and of the resolve job can be compared at N and 10·N in one run. No images are decoded.
//   npx tsx bench/near-dedup-stage.ts [--rows 20000,200000]
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { keyedHash64, keyHex } from '../core/keyed-hash.ts';
import { MixtureSpecSchema } from '../manifests/spec-schema.ts';
import { makeBuildContext } from '../pipelines/context.ts';
import { runNearDedup } from '../pipelines/jobs/near-dedup.ts';
import { runNearDedupBand } from '../pipelines/jobs/near-dedup-band.ts';
import { runNearDedupPlan } from '../pipelines/jobs/near-dedup-plan.ts';
import { encodeKeyRows, type KeyRow } from '../pipelines/keys-file.ts';
import { buildLayout } from '../pipelines/layout.ts';

const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '20000,200000' } } });
const PART_ROWS = 50_000;

function syntheticRow(i: number): KeyRow {
  // Row i = 10k + 9 copies row 10k + 8: a few signature bytes and image bits changed.
  const base = i % 10 === 9 ? i - 1 : i;
  const sig = Buffer.alloc(128);
  for (let b = 0; b < 128; b += 8) sig.writeBigUInt64BE(keyedHash64(0, 'sig', `${base}/${b}`), b);
  let image = keyedHash64(0, 'img', String(base));
  if (base !== i) {
    for (let k = 0; k < 10; k++) sig[Number(keyedHash64(1, 'edit', `${i}/${k}`) % 128n)] ^= 0x5a;
    image ^= 0b1010_0101n;
  }
  return {
    takeKey: keyHex(keyedHash64(0, 'take', String(i))),
    dedupKey: keyHex(keyedHash64(0, 'dedup', String(i))),
    bytes: 1000,
    near: {
      images: [keyHex(image)],
      text: sig.toString('base64'),
      textDigest: keyHex(keyedHash64(0, 'text', String(i))),
      source: 'bench',
      origin: `bench#row=${i}`,
    },
    id: `s${i}`,
  };
}

async function measure(rows: number): Promise<void> {
  const out = await mkdtemp(join(tmpdir(), 'mixforge-near-stage-'));
  try {
    const spec = MixtureSpecSchema.parse({
      name: 'bench',
      seed: 0,
      output: { shard_rows: 1000 },
      near_dedup: {},
      components: [{ name: 'c', source: { format: 'llava-json', uris: ['unused'] } }],
    });
    const ctx = makeBuildContext(spec, out);
    const layout = buildLayout(out);
    await mkdir(join(out, '_build', 'parts'), { recursive: true });
    await mkdir(join(out, '_build', 'near-dup'), { recursive: true });
    const parts = Math.ceil(rows / PART_ROWS);
    for (let p = 0; p < parts; p++) {
      const n = Math.min(PART_ROWS, rows - p * PART_ROWS);
      const keys = Array.from({ length: n }, (_, k) => syntheticRow(p * PART_ROWS + k));
      await writeFile(layout.partKeys(p), encodeKeyRows(keys));
      await writeFile(layout.part(p), ''); // no records: examples get no thumbnails
      await writeFile(
        layout.partSummary(p),
        JSON.stringify({
          part: p,
          component: 'c',
          counts: { in: n, kept: 0, emitted: 0, dropped: {} },
          rows: n,
          bytes: 0,
        }),
      );
    }
    await writeFile(
      layout.plan,
      JSON.stringify({
        buildId: 'b',
        specHash: 'h',
        inputs: [],
        partitions: Array.from({ length: parts }, () => ({ component: 'c', partition: {} })),
      }),
    );
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const timer = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 50);
    /** Wall seconds, CPU seconds and peak RSS of one job. */
    const job = async <T>(work: () => Promise<T>) => {
      global.gc?.();
      peak = process.memoryUsage().rss;
      const t = performance.now();
      const c = process.cpuUsage();
      const result = await work();
      const cpu = process.cpuUsage(c);
      peak = Math.max(peak, process.memoryUsage().rss);
      return { result, wall: (performance.now() - t) / 1000, cpu: (cpu.user + cpu.system) / 1e6, peak };
    };
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const { bands } = await runNearDedupPlan(ctx);
    const bandJobs = [];
    for (let b = 0; b < bands; b++) bandJobs.push(await job(() => runNearDedupBand(ctx, b)));
    const resolve = await job(() => runNearDedup(ctx));
    const cpu = process.cpuUsage(c0);
    clearInterval(timer);
    const s = resolve.result;
    const dropped = s.components.c['near-duplicate-text'] + s.components.c['near-duplicate-image'];
    const mib = (b: number) => (b / 2 ** 20).toFixed(0);
    const slowest = bandJobs.reduce((a, j) => (j.wall > a.wall ? j : a));
    console.log(
      `${rows} samples (${rows / 10} planted): ${((performance.now() - t0) / 1000).toFixed(1)} s wall, ` +
        `${((cpu.user + cpu.system) / 1e6).toFixed(1)} CPU-s in all, ${s.candidates} candidate pairs, ${dropped} dropped; ` +
        `${bands} band jobs: mean ${(bandJobs.reduce((a, j) => a + j.cpu, 0) / bands).toFixed(2)} CPU-s, ` +
        `slowest ${slowest.wall.toFixed(1)} s wall, peak RSS ${mib(Math.max(...bandJobs.map((j) => j.peak)))} MiB; ` +
        `resolve ${resolve.wall.toFixed(1)} s wall, ${resolve.cpu.toFixed(1)} CPU-s, peak RSS ${mib(resolve.peak)} MiB ` +
        `(RSS ${mib(rss0)} MiB before)`,
    );
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

for (const n of args.rows.split(',').map(Number)) await measure(n);
