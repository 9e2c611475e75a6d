// Shows that the json array and jsonl readers stream: reading a ≥ 1 GB file peaks at about the same RSS as a
// small one. Also compares our byte scan + JSON.parse per element with stream-json on the same file.
// Run: npx tsx bench/json-memory.ts [--gb 1] [--keep]     (each read runs in a fresh child process)
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expandGlob } from '../core/storage/index.ts';
import { getReader } from '../sources/registry.ts';

const MB = 1024 * 1024;
const self = fileURLToPath(import.meta.url);

interface ChildResult {
  records: number;
  quarantined: number;
  planSeconds: number;
  readSeconds: number;
  maxRssMB: number;
}

/** A 665K-like record: coco/gqa/... image refs on most, text-only on some, 2–8 turns. */
function mixRecord(i: number): Record<string, unknown> {
  const turns = 2 + 2 * (i % 4);
  const conversations = Array.from({ length: turns }, (_, t) => ({
    from: t % 2 ? 'gpt' : 'human',
    value:
      t === 0 && i % 16 !== 15
        ? `<image>\nWhat is going on in picture ${i}? Answer with "detail" [please].`
        : `Turn ${t} of record ${i}: ${'the quick brown fox jumps over the lazy dog '.repeat(2 + (i % 5))}`,
  }));
  const rec: Record<string, unknown> = { id: i % 3 ? `${String(i).padStart(12, '0')}` : i, conversations };
  // Every record refers to one of a few tiny images so image loading is exercised without GBs of images.
  if (i % 16 !== 15) rec.image = `coco/train2017/${String(i % 8).padStart(12, '0')}.jpg`;
  else rec.model = 'sharegpt';
  return rec;
}

async function writeBig(path: string, bytes: number, layout: 'array' | 'lines'): Promise<number> {
  const out = createWriteStream(path, { highWaterMark: 4 * MB });
  let written = 0;
  let i = 0;
  let batch: string[] = [];
  const flush = async () => {
    const text = batch.join('');
    batch = [];
    written += Buffer.byteLength(text);
    if (!out.write(text)) await new Promise((r) => out.once('drain', r));
  };
  if (layout === 'array') out.write('[\n');
  while (written < bytes) {
    const json = JSON.stringify(mixRecord(i));
    batch.push(layout === 'array' ? `${i > 0 ? ',\n' : ''}${json}` : `${json}\n`);
    i++;
    if (batch.length >= 2000) await flush();
  }
  await flush();
  if (layout === 'array') out.write('\n]\n');
  await new Promise<void>((r, j) => out.end((err?: Error | null) => (err ? j(err) : r())));
  return i;
}

async function childRead(format: string, file: string): Promise<ChildResult> {
  const reader = await getReader(format);
  let t = performance.now();
  const partitions = await reader.plan(await expandGlob(file), {});
  const planSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  let records = 0;
  let quarantined = 0;
  for (const p of partitions) {
    for await (const item of reader.read(p)) {
      if (item.kind === 'record') records++;
      else quarantined++;
    }
  }
  return {
    records,
    quarantined,
    planSeconds,
    readSeconds: (performance.now() - t) / 1000,
    maxRssMB: process.resourceUsage().maxRSS / 1024,
  };
}

/** A child that only read (no plan, no quarantine): its record count, time since `t0` and peak RSS. */
function readOnlyResult(records: number, t0: number): ChildResult {
  return {
    records,
    quarantined: 0,
    planSeconds: 0,
    readSeconds: (performance.now() - t0) / 1000,
    maxRssMB: process.resourceUsage().maxRSS / 1024,
  };
}

/** stream-json's documented way to stream the elements of a top-level array, as the baseline. */
async function childStreamJson(file: string): Promise<ChildResult> {
  const { default: streamArray } = await import('stream-json/streamers/stream-array.js');
  const t = performance.now();
  const pipeline = streamArray.withParserAsStream();
  createReadStream(file).pipe(pipeline);
  let records = 0;
  for await (const item of pipeline as AsyncIterable<{ key: number; value: { id?: unknown } }>) {
    if (item.value.id !== undefined) records++;
  }
  return readOnlyResult(records, t);
}

/** Our element scan + JSON.parse per element, without images, comparable with stream-json. */
async function childScanParse(file: string): Promise<ChildResult> {
  const { readJsonArrayElements } = await import('../sources/json-array.ts');
  const size = (await stat(file)).size;
  const t = performance.now();
  let records = 0;
  for await (const el of readJsonArrayElements(file, { start: 0, end: size, firstItem: 0, fileSize: size })) {
    const v = JSON.parse(
      Buffer.from(el.bytes.buffer, el.bytes.byteOffset, el.bytes.byteLength).toString('utf8'),
    );
    if (v.id !== undefined) records++;
  }
  return readOnlyResult(records, t);
}

function runChild(mode: string, ...args: string[]): ChildResult {
  const out = execFileSync(process.execPath, ['--import', 'tsx', self, '--child', mode, ...args], {
    encoding: 'utf8',
    maxBuffer: 16 * MB,
  });
  return JSON.parse(out.trim().split('\n').pop() as string) as ChildResult;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    const [mode, a, b] = argv.slice(1);
    const r =
      mode === 'read'
        ? await childRead(a, b)
        : mode === 'stream-json'
          ? await childStreamJson(a)
          : await childScanParse(a);
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  const gb = Number(argv[argv.indexOf('--gb') + 1] ?? 1) || 1;
  const dir = await mkdtemp(join(tmpdir(), 'mixforge-json-bench-'));
  try {
    await mkdir(join(dir, 'coco/train2017'), { recursive: true });
    for (let k = 0; k < 8; k++) {
      await writeFile(join(dir, `coco/train2017/${String(k).padStart(12, '0')}.jpg`), Buffer.alloc(2048, k));
    }
    const files = {
      smallArray: join(dir, 'small.json'),
      bigArray: join(dir, 'llava_v1_5_mix665k.json'),
      smallLines: join(dir, 'small.jsonl'),
      bigLines: join(dir, 'Cambrian7M_withsystemprompt.jsonl'),
      compare: join(dir, 'compare.json'),
    };
    const t = performance.now();
    await writeBig(files.smallArray, 8 * MB, 'array');
    await writeBig(files.bigArray, gb * 1024 * MB, 'array');
    await writeBig(files.smallLines, 8 * MB, 'lines');
    await writeBig(files.bigLines, gb * 1024 * MB, 'lines');
    await writeBig(files.compare, 256 * MB, 'array');
    process.stdout.write(
      `wrote fixtures in ${((performance.now() - t) / 1000).toFixed(1)} s under ${dir}\n\n`,
    );

    const row = async (label: string, file: string, r: ChildResult) => {
      const size = (await stat(file)).size;
      const secs = r.planSeconds + r.readSeconds;
      process.stdout.write(
        `${label.padEnd(34)} ${(size / MB).toFixed(0).padStart(6)} MB ${String(r.records + r.quarantined).padStart(9)} recs  ` +
          `plan ${r.planSeconds.toFixed(1).padStart(5)} s  read ${r.readSeconds.toFixed(1).padStart(6)} s  ` +
          `${(size / MB / secs).toFixed(0).padStart(4)} MB/s  peak RSS ${r.maxRssMB.toFixed(0).padStart(5)} MB\n`,
      );
      return r;
    };
    const smallA = await row(
      'llava-json reader, small array',
      files.smallArray,
      runChild('read', 'llava-json', files.smallArray),
    );
    const bigA = await row(
      'llava-json reader, big array',
      files.bigArray,
      runChild('read', 'llava-json', files.bigArray),
    );
    const smallL = await row(
      'cambrian reader, small jsonl',
      files.smallLines,
      runChild('read', 'cambrian', files.smallLines),
    );
    const bigL = await row(
      'cambrian reader, big jsonl',
      files.bigLines,
      runChild('read', 'cambrian', files.bigLines),
    );
    process.stdout.write(
      `\npeak RSS big/small: json array ${(bigA.maxRssMB / smallA.maxRssMB).toFixed(2)}x, ` +
        `jsonl ${(bigL.maxRssMB / smallL.maxRssMB).toFixed(2)}x (file size ratio ${((gb * 1024) / 8).toFixed(0)}x)\n\n`,
    );
    const ours = await row(
      'scan + JSON.parse (no images)',
      files.compare,
      runChild('scan-parse', files.compare),
    );
    const theirs = await row(
      'stream-json StreamArray',
      files.compare,
      runChild('stream-json', files.compare),
    );
    if (ours.records !== theirs.records)
      throw new Error(`record counts differ: ${ours.records} vs ${theirs.records}`);
    process.stdout.write(
      `\nscan + JSON.parse vs stream-json: ${(theirs.readSeconds / ours.readSeconds).toFixed(1)}x faster, ` +
        `peak RSS ${ours.maxRssMB.toFixed(0)} vs ${theirs.maxRssMB.toFixed(0)} MB\n`,
    );
  } finally {
    if (!argv.includes('--keep')) await rm(dir, { recursive: true, force: true });
  }
}

await main();
