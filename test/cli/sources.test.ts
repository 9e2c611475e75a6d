// `mixforge sources read` end to end through bin/mixforge.js: a Cambrian jsonl with an image folder (written here
// with JSON.stringify and sharp) and the demo ReCap parquet for triplets.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import type { SampleLine } from '../../cli/commands/sources.ts';
import { optionsFromFlags, parsePartitionFlag, selectPartitions } from '../../cli/commands/sources.ts';
import type { QuarantineRecord } from '../../core/quarantine.ts';
import type { Partition } from '../../sources/types.ts';
import { imageBeforeQuestion, TRIPLET_QUESTIONS, tripletQuestion } from '../../transforms/triplet.ts';
import { demoDataDir } from '../helpers/demo-data.ts';

const BIN = resolve('bin/mixforge.js');
let dir: string;
let jsonl: string;
let images: string;
let demo: string;
const files: Record<string, Buffer> = {};

interface Run {
  code: number | null;
  lines: SampleLine[];
  stderr: string;
}

function mixforge(args: string[]): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8');
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString('utf8');
    });
    child.on('error', fail);
    child.on('close', (code) => {
      const lines = out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as SampleLine);
      done({ code, lines, stderr: err });
    });
  });
}

/** `mixforge sources read cambrian` over the test's jsonl and image folder, plus `args`. */
function readCambrian(...args: string[]): Promise<Run> {
  return mixforge(['sources', 'read', 'cambrian', jsonl, '--image-root', images, ...args]);
}

async function quarantineLines(file: string): Promise<(QuarantineRecord & { component: string })[]> {
  const text = await readFile(file, 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-sources-cli-'));
  images = join(dir, 'images');
  await mkdir(join(images, 'coco'), { recursive: true });
  for (let i = 0; i < 6; i++) {
    files[`coco/${i}.jpg`] = await sharp({
      create: {
        width: 40 + i * 10,
        height: 30 + i * 5,
        channels: 3,
        background: { r: 40 * i, g: 90, b: 200 },
      },
    })
      .jpeg({ quality: 90 })
      .toBuffer();
  }
  files['coco/alpha.png'] = await sharp({
    create: { width: 20, height: 20, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } },
  })
    .png()
    .toBuffer();
  files['coco/truncated.jpg'] = files['coco/5.jpg'].subarray(0, 300);
  for (const [name, bytes] of Object.entries(files)) await writeFile(join(images, name), bytes);

  const records: unknown[] = [];
  for (let i = 0; i < 24; i++) {
    const kind = i % 6;
    const base = { id: `c${i}`, source: kind === 3 ? 'text_only_sft' : 'coco_caption' };
    if (kind === 3) {
      records.push({
        ...base,
        conversations: [
          { from: 'human', value: `Tell me a fact (${i}).` },
          { from: 'gpt', value: 'Water boils at 100 °C at sea level.' },
        ],
      });
    } else {
      records.push({
        ...base,
        image:
          kind === 5 && i === 11 ? 'coco/truncated.jpg' : kind === 4 ? 'coco/alpha.png' : `coco/${i % 5}.jpg`,
        conversations: [
          { from: 'system', value: 'You are a careful assistant.' },
          { from: 'USER', value: `  <image>\nWhat is in picture ${i}?  ` },
          { from: 'ASSISTANT', value: `Picture ${i} shows a blue field.` },
        ],
      });
    }
  }
  records.push({ id: 'missing', image: 'coco/nope.jpg', conversations: [{ from: 'human', value: 'x' }] });
  jsonl = join(dir, 'Cambrian7M_withsystemprompt.jsonl');
  await writeFile(jsonl, `${records.map((r) => JSON.stringify(r)).join('\n')}\n`);
  demo = await demoDataDir();
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('mixforge sources read', () => {
  it('prints kept samples as JSON lines and writes quarantine records to the file', async () => {
    const q = join(dir, 'q-full.jsonl');
    const r = await readCambrian('--quarantine', q, '--workers', '1');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.lines.length, 23, 'the 25 records less the truncated image and the missing one');
    const s0 = r.lines.find((l) => l.id === 'cambrian/c0');
    assert.deepEqual(s0, {
      id: 'cambrian/c0',
      source: 'cambrian/coco_caption',
      origin: `${jsonl}#line=1`,
      images: [{ width: 40, height: 30, format: 'jpeg', sha256: sha256(files['coco/0.jpg']) }],
      conversations: [
        { from: 'system', value: 'You are a careful assistant.' },
        { from: 'human', value: '<image>\nWhat is in picture 0?' },
        { from: 'gpt', value: 'Picture 0 shows a blue field.' },
      ],
      // Cambrian's `source` field names the subset and is kept with the sample.
      metadata: { source: 'coco_caption' },
      dedup_key: s0?.dedup_key,
    });
    assert.match(s0?.dedup_key ?? '', /^[0-9a-f]{64}$/);
    const alpha = r.lines.find((l) => l.id === 'cambrian/c4');
    assert.equal(alpha?.images[0].format, 'jpeg', 'the transparent PNG was flattened and re-encoded');
    assert.notEqual(alpha?.images[0].sha256, sha256(files['coco/alpha.png']));
    const textOnly = r.lines.find((l) => l.id === 'cambrian/c3');
    assert.deepEqual(textOnly?.images, []);

    const quarantined = await quarantineLines(q);
    assert.deepEqual(quarantined.map((x) => [x.id, x.reason, x.stage, x.component]).sort(), [
      ['cambrian/c11', 'image-truncated', 'image', 'cambrian'],
      ['missing', 'missing-image', 'read', 'cambrian'],
    ]);
    assert.match(
      r.stderr,
      /read 25: kept 23; filtered: none; quarantined: image-truncated 1, missing-image 1/,
    );
  });

  it('--partition i/n for n = 3 covers exactly the full read', async () => {
    const args = ['--target-bytes', '400', '--workers', '0'];
    const full = await readCambrian(...args, '--quarantine', join(dir, 'q-all.jsonl'));
    assert.equal(full.code, 0, full.stderr);
    const parts = await Promise.all(
      [0, 1, 2].map((i) =>
        readCambrian(...args, '--partition', `${i}/3`, '--quarantine', join(dir, `q-${i}.jsonl`)),
      ),
    );
    const partQuarantine: unknown[] = [];
    for (const [i, r] of parts.entries()) {
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.lines.length > 0, `partition ${i}/3 is not empty`);
      partQuarantine.push(...(await quarantineLines(join(dir, `q-${i}.jsonl`))));
    }
    const key = (l: SampleLine) => l.id;
    const union = parts.flatMap((p) => p.lines);
    assert.equal(new Set(union.map(key)).size, union.length, 'no sample in two partitions');
    assert.deepEqual(
      [...union].sort((a, b) => key(a).localeCompare(key(b))),
      [...full.lines].sort((a, b) => key(a).localeCompare(key(b))),
    );
    const all = await quarantineLines(join(dir, 'q-all.jsonl'));
    const byOrigin = (x: unknown) => (x as QuarantineRecord).origin;
    assert.deepEqual(partQuarantine.map(byOrigin).sort(), all.map(byOrigin).sort());
  });

  it('--transform triplet --seed S rewrites ReCap prompts into keyed triplets', async () => {
    const uri = join(demo, 'recap-cc3m', 'data', '*.parquet');
    const readRecap = (...args: string[]) =>
      mixforge(['sources', 'read', 'llava-recap', uri, '--workers', '1', '--limit', '12', ...args]);
    const plain = await readRecap();
    const r = await readRecap('--transform', 'triplet', '--seed', '17');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.lines.length, plain.lines.length);
    assert.ok(r.lines.length >= 10);
    for (const [i, line] of r.lines.entries()) {
      const q = tripletQuestion(17, line.id);
      const before = imageBeforeQuestion(17, line.id);
      assert.equal(line.conversations.length, 2);
      assert.equal(line.conversations[0].value, before ? `<image>\n${q}` : `${q}\n<image>`);
      assert.ok(TRIPLET_QUESTIONS.includes(q));
      assert.equal(
        line.conversations[1].value,
        plain.lines[i].conversations.at(-1)?.value,
        'the dense caption',
      );
      assert.equal(line.dedup_key, plain.lines[i].dedup_key, 'dedup key from the source text');
    }
  });

  it('filters from --spec, overridden by flags, are counted by name', async () => {
    const spec = join(dir, 'component.yaml');
    await writeFile(spec, 'filters:\n  image_only: true\n  max_chars: 10000\nimages:\n  max_side: 32\n');
    const withSpec = ['--spec', spec, '--workers', '0'];
    const r = await readCambrian(...withSpec);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /filtered: image_only 4;/);
    assert.ok(
      r.lines.every((l) => l.images.length === 1 && Math.max(l.images[0].width, l.images[0].height) <= 32),
    );
    const flags = await readCambrian(...withSpec, '--min-side', '41', '--limit', '6');
    assert.match(flags.stderr, /read 6: kept \d+; filtered: image_only 1, min_side \d+;/);
  });

  it('rejects a bad spec or flag naming the file and field, with exit code 1', async () => {
    const spec = join(dir, 'bad.yaml');
    await writeFile(spec, 'filters:\n  max_imgs: 1\n');
    const r = await mixforge(['sources', 'read', 'cambrian', jsonl, '--spec', spec]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `${spec.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} at filters\\.max_imgs: unknown field 'max_imgs'.*\\(line 2\\)`,
      ),
    );
    // Flags are checked by the same schema, without a process each.
    await assert.rejects(
      optionsFromFlags({ jpegQuality: 200, includeSource: [], excludeSource: [] }),
      /command line at images\.jpeg_quality/,
    );
    await assert.rejects(
      optionsFromFlags({ transform: 'tripple', includeSource: [], excludeSource: [] }),
      /command line at transform/,
    );
    assert.throws(() => parsePartitionFlag('3/3'), /--partition.*0 ≤ i < n/);
  });
});

describe('partition selection', () => {
  it('for any n, i = 0..n-1 pick every planned partition exactly once', () => {
    const planned = Array.from({ length: 11 }, (_, k) => ({ start: k }) as unknown as Partition);
    for (const n of [1, 2, 3, 5, 11, 20]) {
      const picked = Array.from({ length: n }, (_, i) => selectPartitions(planned, i, n)).flat();
      assert.deepEqual(
        picked.map((p) => p.start).sort((a, b) => a - b),
        planned.map((p) => p.start),
      );
    }
    assert.deepEqual(parsePartitionFlag('2/5'), { index: 2, count: 5 });
    for (const bad of ['5/5', '1/0', 'a/b', '1', '-1/3']) assert.throws(() => parsePartitionFlag(bad));
  });
});
