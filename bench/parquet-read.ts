// Parquet read throughput of our llava-recap reader against DuckDB on the same ReCap-like file (written by DuckDB,
// real images), and with --big: peak RSS of a full streaming read of a small file vs a ≥ 1 GB file.
//   npx tsx bench/parquet-read.ts [--rows N] [--reps 3] [--compression snappy|zstd|gzip|uncompressed]
//   npx tsx bench/parquet-read.ts --big [--big-gb 1.1]
//   npx tsx bench/parquet-read.ts --keep DIR; node --import tsx --cpu-prof bench/parquet-read.ts --rss-child FILE [--release]
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import { expandGlob } from '../core/storage/index.ts';
import { grainyPhoto } from '../demo/images.ts';
import { getReader } from '../sources/registry.ts';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '6000' },
    reps: { type: 'string', default: '3' },
    compression: { type: 'string', default: 'snappy' },
    big: { type: 'boolean', default: false },
    'big-gb': { type: 'string', default: '1.1' },
    'rss-child': { type: 'string' },
    /** Write the throughput file under this folder and keep it (to profile a read with --rss-child). */
    keep: { type: 'string' },
    /** With --rss-child: read as ingest does, releasing each record (recycled chunk memory). */
    release: { type: 'boolean', default: false },
  },
});

/** Rows per row group: the 2048-row granularity DuckDB writes at (real HF image shards use ~100-row groups). */
const ROW_GROUP = 2048;
const DISTINCT_IMAGES = 240;

const sql = (s: string) => `'${s.replaceAll("'", "''")}'`;

/**
 * Draw the distinct images once into `dir` (DuckDB reads them with read_blob). A little Gaussian grain over the
 * demo picture gives photo-like sizes (~30–40 KiB JPEG at 512×384, close to CC3M's); mostly JPEG, some WebP.
 * Returns their mean size.
 */
async function drawImages(dir: string): Promise<number> {
  let total = 0;
  for (let i = 0; i < DISTINCT_IMAGES; i++) {
    const width = 480 + (i % 4) * 32;
    const height = 360 + (i % 3) * 32;
    const img = await grainyPhoto({ name: `bench-${i}`, width, height, sigma: 8 });
    const bytes = await (i % 4 === 3 ? img.webp({ quality: 85 }) : img.jpeg({ quality: 90 })).toBuffer();
    total += bytes.byteLength;
    await writeFile(join(dir, `img-${String(i).padStart(4, '0')}.bin`), bytes);
  }
  return total / DISTINCT_IMAGES;
}

/**
 * Write a ReCap-like file with DuckDB: unique ids, an image struct whose bytes are one of the drawn images plus a
 * row suffix (so no two rows share bytes and dictionary encoding cannot collapse them), two-turn conversations
 * with a multi-sentence caption, and data_source.
 */
async function writeRecapLike(
  path: string,
  imagesDir: string,
  rows: number,
  compression: string,
): Promise<void> {
  const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
  const conn = await instance.connect();
  try {
    await conn.run(
      `CREATE TABLE imgs AS SELECT (row_number() OVER (ORDER BY filename)) - 1 AS k, content FROM read_blob(${sql(join(imagesDir, '*.bin'))})`,
    );
    await conn.run(`COPY (
      SELECT printf('GCC_train_%09d', i) AS id,
             {'bytes': content || ('#' || i)::BLOB, 'path': printf('%09d.jpg', i)} AS image,
             [{'from': 'human', 'value': '<image>\n' || ['What is happening in this image?', 'Describe this image in detail.', 'What do you see in this picture?'][i % 3 + 1]},
              {'from': 'gpt', 'value': 'The image ' || i || ' shows an abstract composition of overlapping rectangles on a diagonal gradient. '
                 || repeat('The colours shift from a pale tone at the top left to a deep shade at the bottom right. ', 2 + i % 4)
                 || 'There are no people or text in the frame.'}] AS conversations,
             'cc3m' AS data_source
      FROM range(${rows}) r(i) JOIN imgs ON imgs.k = i % ${DISTINCT_IMAGES}
    ) TO ${sql(path)} (FORMAT parquet, COMPRESSION ${compression}, ROW_GROUP_SIZE ${ROW_GROUP})`);
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

interface ReadResult {
  rows: number;
  imageBytes: number;
  textChars: number;
  ms: number;
  /** CPU time of the whole process (every thread) during the read. */
  cpuMs: number;
}

const cpuMsSince = (start: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(start);
  return (u.user + u.system) / 1000;
};

/** Records in flight in the build's ingest on a 4-thread pool (record-processor.ts: threads × 4). */
const INGEST_WINDOW = 16;

/**
 * A full read through the llava-recap reader: plan by footers, then every partition, touching every record.
 * `recycle`: read as the build's ingest does, releasing each record INGEST_WINDOW records later (so the next row
 * group is read while the last records of the one before are still held, as in ingest).
 */
async function readWithOurs(path: string, recycle = false): Promise<ReadResult> {
  const reader = await getReader('llava-recap');
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const plan = await reader.plan(await expandGlob(path), { targetRecords: ROW_GROUP });
  let rows = 0;
  let imageBytes = 0;
  let textChars = 0;
  const held: (() => void)[] = [];
  for (const p of plan) {
    for await (const item of reader.read(p, { recycle })) {
      if (item.kind !== 'record') throw new Error(`unexpected quarantine: ${item.record.message}`);
      rows++;
      for (const im of item.record.images) imageBytes += im.bytes.byteLength;
      for (const t of item.record.conversations) textChars += t.value.length;
      if (item.release) held.push(item.release);
      if (held.length > INGEST_WINDOW) held.shift()?.();
    }
  }
  for (const release of held) release();
  return { rows, imageBytes, textChars, ms: performance.now() - t0, cpuMs: cpuMsSince(cpu0) };
}

/** DuckDB decodes every column natively (no conversion to JS values) and sums the same quantities. */
async function readWithDuckDB(path: string, threads?: number): Promise<ReadResult> {
  const instance = await DuckDBInstance.create(':memory:', threads ? { threads: String(threads) } : {});
  const conn = await instance.connect();
  try {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const r = await conn.runAndReadAll(
      `SELECT count(id), sum(octet_length(image.bytes)), sum(list_sum([length(t.value) FOR t IN conversations])), count(data_source) FROM ${sql(path)}`,
    );
    const ms = performance.now() - t0;
    const cpuMs = cpuMsSince(cpu0);
    const [rows, imageBytes, textChars] = r.getRows()[0].map((v) => Number(v));
    return { rows, imageBytes, textChars, ms, cpuMs };
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

/** Peak RSS of a full read in a fresh process (so one measurement cannot inherit another's heap). */
function childPeakRss(path: string): { rows: number; peakRssMB: number; ms: number } {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', new URL(import.meta.url).pathname, '--rss-child', path],
    {
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) throw new Error(`child read failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
}

const mb = (bytes: number) => bytes / 1e6;
const fmt = (x: number, d = 1) => x.toFixed(d);

async function throughput(): Promise<void> {
  const rows = Number(args.rows);
  const compression = String(args.compression);
  const dir = args.keep ?? (await mkdtemp(join(tmpdir(), 'mixforge-bench-pq-')));
  await mkdir(dir, { recursive: true });
  try {
    await mkdir(join(dir, 'img'), { recursive: true });
    const meanImage = await drawImages(join(dir, 'img'));
    const path = join(dir, 'recap-cc3m', 'train-00000-of-00001.parquet');
    await mkdir(join(dir, 'recap-cc3m'), { recursive: true });
    await writeRecapLike(path, join(dir, 'img'), rows, compression);
    const size = (await stat(path)).size;
    console.log(
      `file: ${rows} rows, ${fmt(mb(size))} MB ${compression}, row groups of ${ROW_GROUP}, mean image ${fmt(meanImage / 1024)} KiB`,
    );
    // Warm the page cache and every code path once, then measure, alternating.
    const readers: [string, () => Promise<ReadResult>][] = [
      ['mixforge llava-recap reader', () => readWithOurs(path)],
      ['ours, released (as ingest)', () => readWithOurs(path, true)],
      ['DuckDB, 1 thread', () => readWithDuckDB(path, 1)],
      [`DuckDB, all ${availableParallelism()} cores`, () => readWithDuckDB(path)],
    ];
    for (const [, read] of readers) await read();
    const results = new Map<string, ReadResult[]>(readers.map(([name]) => [name, []]));
    for (let rep = 0; rep < Number(args.reps); rep++)
      for (const [name, read] of readers) results.get(name)?.push(await read());
    const best = (rs: ReadResult[], key: 'ms' | 'cpuMs') => Math.min(...rs.map((r) => r[key]));
    const median = (rs: ReadResult[], key: 'ms' | 'cpuMs') =>
      rs.map((r) => r[key]).sort((a, b) => a - b)[Math.floor(rs.length / 2)];
    const first = [...results.values()][0][0];
    const duck1 = results.get('DuckDB, 1 thread') ?? [];
    for (const [name, rs] of results) {
      for (const r of rs) {
        if (r.rows !== first.rows || r.imageBytes !== first.imageBytes || r.textChars !== first.textChars)
          throw new Error(`${name} disagrees: ${JSON.stringify(r)} vs ${JSON.stringify(first)}`);
      }
      const ms = best(rs, 'ms');
      console.log(
        `${name.padEnd(28)} ${fmt(ms, 0).padStart(6)} ms  ${fmt(mb(size) / (ms / 1000)).padStart(7)} MB/s  ` +
          `DuckDB-1/this ${fmt(best(duck1, 'ms') / ms, 2)}  CPU best ${fmt(best(rs, 'cpuMs'), 0)} ms, median ${fmt(median(rs, 'cpuMs'), 0)} ms, ` +
          `DuckDB-1/this by CPU median ${fmt(median(duck1, 'cpuMs') / median(rs, 'cpuMs'), 2)}`,
      );
    }
    console.log(
      `(wall: best of ${args.reps}; CPU: process.cpuUsage over the read, every thread; readers alternated; ` +
        'same rows, image bytes and text characters checked across readers)',
    );
  } finally {
    if (!args.keep) await rm(dir, { recursive: true, force: true });
  }
}

async function bigFile(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mixforge-bench-pqbig-'));
  try {
    await mkdir(join(dir, 'img'));
    const meanImage = await drawImages(join(dir, 'img'));
    const perRow = meanImage + 700;
    const bigRows = Math.ceil((Number(args['big-gb']) * 1e9) / perRow / ROW_GROUP) * ROW_GROUP;
    const files = [
      { name: 'small', rows: 2 * ROW_GROUP },
      { name: 'big', rows: bigRows },
    ];
    for (const f of files) {
      const path = join(dir, `recap-cc3m-${f.name}`, 'train.parquet');
      await mkdir(join(dir, `recap-cc3m-${f.name}`));
      const t0 = performance.now();
      await writeRecapLike(path, join(dir, 'img'), f.rows, 'snappy');
      const size = (await stat(path)).size;
      console.log(
        `wrote ${f.name}: ${f.rows} rows, ${fmt(mb(size))} MB in ${fmt((performance.now() - t0) / 1000)} s`,
      );
      const r = childPeakRss(path);
      if (r.rows !== f.rows) throw new Error(`read ${r.rows} rows of ${f.rows}`);
      console.log(
        `  full streaming read: ${r.rows} rows in ${fmt(r.ms / 1000)} s (${fmt(mb(size) / (r.ms / 1000))} MB/s), peak RSS ${r.peakRssMB} MB`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (args['rss-child']) {
  const r = await readWithOurs(args['rss-child'], args.release);
  console.log(
    JSON.stringify({
      rows: r.rows,
      peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
      ms: Math.round(r.ms),
    }),
  );
} else if (args.big) {
  await bigFile();
} else {
  await throughput();
}
