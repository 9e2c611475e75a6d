import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { drawDemoImage } from '../../demo/images.ts';
import { reader } from '../../sources/cambrian.ts';
import { readEverything, summary, uploadTree } from '../helpers/llava-json-fixtures.ts';
import { startS3, type TestS3 } from '../helpers/s3-server.ts';

let dir = '';
let root = '';
let jsonl = '';
let s3: TestS3;
const images = new Map<string, Uint8Array>();

// Folders extracted under the root, plus one subset left as a plain tar beside them (ai2d.tar).
const FOLDER_IMAGES = [
  'coco/train2017/000000000009.jpg',
  'sharegpt4v/sam/images/sa_1.png',
  'ocr_vqa/images/1.webp',
];
const TAR_IMAGES = ['ai2d/images/0.png', 'ai2d/images/1.png'];
const SYSTEM = { from: 'system', value: 'You are a helpful assistant.' };

function line(obj: unknown): string {
  return JSON.stringify(obj);
}

function lines(): string[] {
  const turns = (q: string) => [
    SYSTEM,
    { from: 'human', value: q },
    { from: 'gpt', value: `answer to ${q}` },
  ];
  return [
    line({
      id: 'c0',
      image: FOLDER_IMAGES[0],
      conversations: turns('<image>\nWhat is here?'),
      source: 'coco',
    }),
    line({ id: 'c1', image: FOLDER_IMAGES[1], conversations: turns('<image>\nCaption [it] "now"') }),
    '',
    line({ id: 'c2', conversations: turns('Text only {no image}'), source: 'sharegpt_text.json' }),
    line({ id: 'c3', image: TAR_IMAGES[0], conversations: turns('<image>\nDiagram?') }),
    '{"id": "c4", "image": "coco/x.jpg", "conversations": [',
    line({ id: 'c5', image: FOLDER_IMAGES[2], conversations: turns('<image>\nRead the cover.') }),
    line({ id: 'c6', image: '/abs/path.jpg', conversations: turns('<image>\nq') }),
    line({ id: 'c7', image: 'coco/../../outside.jpg', conversations: turns('<image>\nq') }),
    line({ id: 'c8', image: 'coco/train2017/missing.jpg', conversations: turns('<image>\nq') }),
    line({ id: 'c9', image: TAR_IMAGES[1], conversations: turns('<image>\nDiagram 2?'), source: 'ai2d' }),
    line({ conversations: turns('no id') }),
    line({ id: 'c11', conversations: turns('last, no newline') }),
  ];
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-cambrian-'));
  root = join(dir, 'Cambrian-10M');
  const staging = join(dir, 'staging');
  for (const p of [...FOLDER_IMAGES, ...TAR_IMAGES]) {
    const format = p.endsWith('.png') ? 'png' : p.endsWith('.webp') ? 'webp' : 'jpeg';
    const bytes = await drawDemoImage(p, format, { width: 40, height: 30 });
    images.set(p, bytes);
    const base = TAR_IMAGES.includes(p) ? staging : root;
    await mkdir(dirname(join(base, p)), { recursive: true });
    await writeFile(join(base, p), bytes);
  }
  execFileSync('tar', ['-cf', join(root, 'ai2d.tar'), '-C', staging, 'ai2d']);
  jsonl = join(root, 'Cambrian7M_withsystemprompt.jsonl');
  await writeFile(jsonl, lines().join('\n'));
  s3 = await startS3(['cambrian']);
});
after(async () => {
  await s3.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('cambrian reader', () => {
  it('reads records (system turns, sources, images from folders and a tar) and quarantines bad lines', async () => {
    const r = await readEverything(reader, jsonl);
    const nonBlank = lines().filter((l) => l !== '').length;
    assert.equal(r.records.length + r.quarantined.length, nonBlank, 'records seen = yielded + quarantined');
    assert.deepEqual(
      r.records.map((x) => [x.id, x.source, x.origin.replace(/.*#/, '#'), x.images.map((i) => i.path)]),
      [
        ['c0', 'cambrian/coco', '#line=1', [FOLDER_IMAGES[0]]],
        ['c1', 'cambrian/sharegpt4v', '#line=2', [FOLDER_IMAGES[1]]],
        ['c2', 'cambrian/sharegpt_text', '#line=4', []],
        ['c3', 'cambrian/ai2d', '#line=5', [TAR_IMAGES[0]]],
        ['c5', 'cambrian/ocr_vqa', '#line=7', [FOLDER_IMAGES[2]]],
        ['c9', 'cambrian/ai2d', '#line=11', [TAR_IMAGES[1]]],
        ['c11', 'cambrian/text-only', '#line=13', []],
      ],
    );
    for (const rec of r.records) {
      for (const img of rec.images) {
        assert.deepEqual(
          Buffer.from(img.bytes),
          Buffer.from(images.get(img.path ?? '') as Uint8Array),
          `${img.path}`,
        );
      }
    }
    const c0 = r.records[0];
    assert.deepEqual(c0.conversations[0], SYSTEM);
    assert.deepEqual(c0.meta, { source: 'coco' });
    assert.deepEqual(
      r.quarantined.map((q) => [q.origin.replace(/.*#/, '#'), q.reason, q.id ?? null]),
      [
        ['#line=6', 'unreadable-record', null],
        ['#line=8', 'unsafe-image-path', 'c6'],
        ['#line=9', 'unsafe-image-path', 'c7'],
        ['#line=10', 'missing-image', 'c8'],
        ['#line=12', 'missing-id', null],
      ],
    );
  });

  it('yields exactly the full read for every partition size', async () => {
    const full = summary(await readEverything(reader, jsonl));
    for (const targetBytes of [1, 50, 200, 700]) {
      const parts = await readEverything(reader, jsonl, { targetBytes });
      assert.ok(parts.partitions > 1);
      assert.deepEqual(summary(parts), full, `targetBytes ${targetBytes}`);
    }
  });

  it('reads a .tar given as the image root', async () => {
    const r = await readEverything(reader, jsonl, { imageRoot: join(root, 'ai2d.tar') });
    const ai2d = r.records.filter((x) => x.images.length > 0).map((x) => x.id);
    assert.deepEqual(ai2d, ['c3', 'c9']);
    assert.equal(r.quarantined.filter((q) => q.reason === 'missing-image').length, 4);
  });

  it('reads the same from S3, including the tar beside the folders', async () => {
    await uploadTree(root, 's3://cambrian/data');
    const local = summary(await readEverything(reader, jsonl, { targetBytes: 300 }));
    const remote = await readEverything(reader, 's3://cambrian/data/Cambrian7M_withsystemprompt.jsonl', {
      targetBytes: 300,
    });
    assert.deepEqual(
      summary(remote).map((l) => l.replace('s3://cambrian/data', root)),
      local,
    );
  });

  it('explains that a .tar.gz image root must be decompressed', async () => {
    await assert.rejects(
      readEverything(reader, jsonl, { imageRoot: join(root, 'ai2d.tar.gz') }),
      /ai2d\.tar\.gz: compressed tar archives cannot be read member by member/,
    );
  });
});
