// Synthetic inputs for scale benchmarks: N records over four components in the release formats (LLaVA-ReCap
// parquet ×2, llava-json with its images in a .tar, llava-json with an image folder), every image a small real
// JPEG whose pixels differ from every other one, some exact duplicates for dedup to drop and text-only records for
// a filter, and the spec that builds them (takes on two components). Deterministic in (n): same n, same bytes.
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import sharp from 'sharp';
import tar from 'tar-stream';
import { keyedHash64 } from '../core/keyed-hash.ts';
import { writeParquet } from '../core/parquet/write.ts';
import { RECAP_FIELDS } from './recap-parquet.ts';

/** Distinct base pictures; each is re-quantised into QUANT_VARIANTS pixel-distinct variants (see scaleImage). */
const POOL = 2048;
const QUANT_VARIANTS = 32 * 32;
const ROWS_PER_PARQUET = 10_000;

export interface ScaleInputs {
  dir: string;
  spec: string;
  n: number;
  /** What the build must report: records read per component, exact duplicates and text-only records dropped. */
  expected: {
    in: Record<string, number>;
    duplicates: number;
    textOnly: number;
    imageBytes: number;
  };
}

/** How N records split over the components (the first three sum to N minus the last). */
export function componentSizes(n: number): { recap: number; extra: number; instruct: number; vqa: number } {
  const recap = Math.round(n * 0.55);
  const extra = Math.round(n * 0.2);
  const instruct = Math.round(n * 0.15);
  return { recap, extra, instruct, vqa: n - recap - extra - instruct };
}

const WORDS =
  'a the red blue green small large wooden metal street house window person dog cat tree sky cloud car road sign table chair cup plate light shadow corner edge bright dark soft sharp old new several two three near behind above below beside across'.split(
    ' ',
  );

/** A 250–450 character dense caption, a pure function of `i`. */
function caption(i: number): string {
  let h = keyedHash64(0, 'scale-caption', String(i));
  const len = 40 + Number(h % 30n);
  const words: string[] = [`Picture ${i} shows`];
  for (let k = 0; k < len; k++) {
    if (k % 10 === 9) h = keyedHash64(0, 'scale-caption', `${i}/${k}`);
    words.push(WORDS[Number((h >> BigInt((k % 10) * 6)) % BigInt(WORDS.length))]);
  }
  return `${words.join(' ')}.`;
}

export async function scaleImagePool(): Promise<Buffer[]> {
  const pool: Buffer[] = [];
  for (let p = 0; p < POOL; p++) {
    const h = keyedHash64(0, 'scale-image', String(p));
    const width = 32 + Number(h % 33n);
    const height = 32 + Number((h >> 8n) % 33n);
    // Blocky colour noise: every 8×8 block has AC energy, so changing any AC quantiser changes its pixels.
    const px = Buffer.alloc(width * height * 3);
    let s = h;
    for (let k = 0; k < px.length; k++) {
      s = (s * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
      px[k] = Number(s >> 56n);
    }
    pool.push(
      await sharp(px, { raw: { width, height, channels: 3 } })
        .jpeg({ quality: 85 })
        .toBuffer(),
    );
  }
  return pool;
}

/**
 * Image `i`: base picture i mod POOL with two low-frequency AC entries of its luminance quantisation table set from
 * floor(i / POOL). The entropy-coded data stays as it is, so this is a valid JPEG that decodes to different pixels
 * for every (base, variant) pair at the cost of a copy — encoding a million JPEGs would take longer than the build.
 */
export function scaleImage(pool: Buffer[], i: number): Buffer {
  const base = pool[i % POOL];
  const v = Math.floor(i / POOL);
  if (v >= QUANT_VARIANTS) throw new Error(`scale inputs: at most ${POOL * QUANT_VARIANTS} distinct images`);
  const out = Buffer.from(base);
  let pos = 2;
  while (pos + 4 < out.length && !(out[pos] === 0xff && out[pos + 1] === 0xdb))
    pos += 2 + out.readUInt16BE(pos + 2);
  if (out[pos + 1] !== 0xdb) throw new Error('scale inputs: no quantisation table in the base JPEG');
  // pos+4: Pq/Tq of the first table (8-bit, table 0 = luminance); then 64 values in zig-zag order.
  out[pos + 5 + 1] = 2 + (v % 32);
  out[pos + 5 + 2] = 2 + Math.floor(v / 32);
  return out;
}

function recapRow(id: string, i: number, image: Buffer, source: string) {
  return {
    id,
    image: { bytes: new Uint8Array(image.buffer, image.byteOffset, image.byteLength), path: `${id}.jpg` },
    conversations: [
      { from: 'human', value: '<image>\nWhat do you see in this image?' },
      { from: 'gpt', value: caption(i) },
    ],
    data_source: source,
  };
}

async function writeParquetFiles(
  dir: string,
  rows: number,
  row: (k: number) => Record<string, unknown>,
): Promise<void> {
  await mkdir(join(dir, 'data'), { recursive: true });
  for (let f = 0; f * ROWS_PER_PARQUET < rows; f++) {
    const chunk: Record<string, unknown>[] = [];
    for (let k = f * ROWS_PER_PARQUET; k < Math.min(rows, (f + 1) * ROWS_PER_PARQUET); k++)
      chunk.push(row(k));
    const bytes = await writeParquet({ fields: RECAP_FIELDS, rows: chunk, rowGroupSize: 1000 });
    await writeFile(join(dir, 'data', `train-${String(f).padStart(5, '0')}.parquet`), bytes);
  }
}

/** One JSON array, one record per line, written in pieces. */
async function writeJsonArray(file: string, n: number, record: (k: number) => object): Promise<void> {
  const out = createWriteStream(file);
  const write = (s: string) =>
    out.write(s) ? Promise.resolve() : new Promise<void>((r) => out.once('drain', () => r()));
  await write('[\n');
  for (let k = 0; k < n; k++) await write(`${k ? ',\n' : ''}${JSON.stringify(record(k))}`);
  await write('\n]\n');
  await new Promise<void>((resolve, reject) =>
    out.end((err?: Error | null) => (err ? reject(err) : resolve())),
  );
}

const instructTurns = (i: number) => [
  { from: 'human', value: '<image>\nDescribe this picture in detail.' },
  { from: 'gpt', value: caption(i) },
  { from: 'human', value: 'What stands out most?' },
  { from: 'gpt', value: `The ${WORDS[i % WORDS.length]} part, in picture ${i}.` },
];

/**
 * Writes the inputs of an `n`-record mixture under `dir` (skipped when `dir` already holds them for this `n`) and
 * returns the spec's path and what the build must count.
 */
export async function generateScaleInputs(dir: string, n: number): Promise<ScaleInputs> {
  const sizes = componentSizes(n);
  // Every 100th recap record repeats the one before it under a new id (same image bytes, same text); every 4th
  // recap_extra record copies a recap record. Dedup keeps the first of each (earliest component).
  const recapDups = Math.floor(sizes.recap / 100);
  const extraDups = Math.floor(sizes.extra / 4);
  const vqaTextOnly = Math.floor(sizes.vqa / 10);
  const specPath = join(dir, 'scale.yaml');
  const expectedPath = join(dir, 'expected.json');
  const expected: ScaleInputs['expected'] = {
    in: { recap: sizes.recap, recap_extra: sizes.extra, instruct: sizes.instruct, vqa: sizes.vqa },
    duplicates: recapDups + extraDups,
    textOnly: vqaTextOnly,
    imageBytes: 0,
  };
  try {
    const done = JSON.parse(await readFile(expectedPath, 'utf8')) as ScaleInputs['expected'] & { n: number };
    if (done.n === n) return { dir, spec: specPath, n, expected: done };
  } catch {
    // not generated yet
  }
  await mkdir(dir, { recursive: true });
  const pool = await scaleImagePool();
  let imageBytes = 0;
  const image = (i: number) => {
    const b = scaleImage(pool, i);
    imageBytes += b.length;
    return b;
  };
  // Global image index: recap 0…, extra after, instruct after, vqa after: no two records share one unless meant to.
  const recapImage = (k: number) => (k % 100 === 99 ? k - 1 : k);
  await writeParquetFiles(join(dir, 'recap'), sizes.recap, (k) =>
    recapRow(`recap-${k}`, recapImage(k), image(recapImage(k)), 'scale_recap'),
  );
  const extraBase = sizes.recap;
  await writeParquetFiles(join(dir, 'recap-extra'), sizes.extra, (k) => {
    if (k % 4 !== 3) return recapRow(`extra-${k}`, extraBase + k, image(extraBase + k), 'scale_extra');
    // A copy of a recap record (k·7 mod recap lands anywhere), as written there: same image bytes, same caption.
    const j = recapImage((k * 7) % sizes.recap);
    return recapRow(`extra-${k}`, j, image(j), 'scale_extra');
  });

  const instructBase = extraBase + sizes.extra;
  await mkdir(join(dir, 'instruct'), { recursive: true });
  const pack = tar.pack();
  const tarDone = pipeline(pack, createWriteStream(join(dir, 'instruct', 'images.tar')));
  for (let k = 0; k < sizes.instruct; k++) {
    const bytes = image(instructBase + k);
    await new Promise<void>((resolve, reject) =>
      pack.entry({ name: `coco/${String(k).padStart(12, '0')}.jpg`, size: bytes.length }, bytes, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  }
  pack.finalize();
  await tarDone;
  await writeJsonArray(join(dir, 'instruct', 'instruct.json'), sizes.instruct, (k) => ({
    id: `instruct-${k}`,
    image: `coco/${String(k).padStart(12, '0')}.jpg`,
    conversations: instructTurns(instructBase + k),
  }));

  const vqaBase = instructBase + sizes.instruct;
  for (let d = 0; d * 1000 < sizes.vqa; d++)
    await mkdir(join(dir, 'vqa', 'gqa', String(d)), { recursive: true });
  for (let k = 0; k < sizes.vqa; k++) {
    if (k % 10 === 9) continue;
    await writeFile(join(dir, 'vqa', 'gqa', String(Math.floor(k / 1000)), `${k}.jpg`), image(vqaBase + k));
  }
  await writeJsonArray(join(dir, 'vqa', 'vqa.json'), sizes.vqa, (k) =>
    k % 10 === 9
      ? {
          id: `vqa-${k}`,
          conversations: [
            { from: 'human', value: `Count to ${k}.` },
            { from: 'gpt', value: 'Done.' },
          ],
        }
      : {
          id: `vqa-${k}`,
          image: `gqa/${Math.floor(k / 1000)}/${k}.jpg`,
          conversations: instructTurns(vqaBase + k),
        },
  );

  const spec = `# Synthetic scale mixture of ${n} records (dev/scale-inputs.ts).
name: scale
seed: 7
output:
  shard_rows: 5000
  compression: zstd
images:
  max_side: 2048
components:
  - name: recap
    source: {format: llava-recap, uris: ["${dir}/recap/data/*.parquet"]}
    transform: triplet
  - name: recap_extra
    source: {format: llava-recap, uris: ["${dir}/recap-extra/data/*.parquet"]}
    transform: triplet
    take: {fraction: 0.5}
  - name: instruct
    source: {format: llava-json, uris: ["${dir}/instruct/instruct.json"], image_root: "${dir}/instruct/images.tar"}
    take: {count: ${Math.floor(sizes.instruct * 0.8)}}
  - name: vqa
    source: {format: llava-json, uris: ["${dir}/vqa/vqa.json"], image_root: "${dir}/vqa"}
    filters: {image_only: true}
`;
  await writeFile(specPath, spec);
  expected.imageBytes = imageBytes;
  await writeFile(expectedPath, JSON.stringify({ ...expected, n }));
  return { dir, spec: specPath, n, expected };
}
