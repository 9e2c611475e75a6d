import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SourceFileError } from '../../core/errors.ts';
import { drawDemoImage } from '../../demo/images.ts';
import { reader } from '../../sources/llava-json.ts';
import { jsonArrayText, readEverything, summary, uploadTree } from '../helpers/llava-json-fixtures.ts';
import { startS3, type TestS3 } from '../helpers/s3-server.ts';

let dir = '';
let root = '';
let annotations = '';
let s3: TestS3;
const images = new Map<string, Uint8Array>();

const IMAGE_PATHS = [
  'coco/train2017/000000033471.jpg',
  'gqa/images/2354786.jpg',
  'ocr_vqa/images/140031996.png',
  'textvqa/train_images/0a0bc91825468c45.jpg',
  'vg/VG_100K_2/1.jpg',
  'vg/VG_100K/10.webp',
];

function turns(q: string, a: string) {
  return [
    { from: 'human', value: q },
    { from: 'gpt', value: a },
  ];
}

/** The fixture: good records in every subset, text-only records, and each kind of bad record. */
function fixturePieces(): { pieces: string[]; expectGood: number } {
  const good = IMAGE_PATHS.map((image, i) =>
    JSON.stringify({
      id: i % 2 === 0 ? 1000 + i : `good-${i}`,
      image,
      conversations: turns(`<image>\nWhat is "this" [${i}]? {é😀}`, `A \\ thing ]}, number ${i}.`),
      ...(i === 0 ? { model: 'gpt-4-0314' } : {}),
    }),
  );
  const textOnly = [0, 1, 2].map((i) =>
    JSON.stringify({ id: `text-${i}`, conversations: turns(`Say ${i}`, `${i}`), model: 'sharegpt' }),
  );
  const bad = [
    JSON.stringify({ id: 'trav', image: '../secret.jpg', conversations: turns('<image>\nq', 'a') }),
    JSON.stringify({ id: 'abs', image: '/etc/passwd', conversations: turns('<image>\nq', 'a') }),
    JSON.stringify({ id: 'link', image: 'coco/train2017/evil.jpg', conversations: turns('<image>\nq', 'a') }),
    JSON.stringify({
      id: 'gone',
      image: 'coco/train2017/missing.jpg',
      conversations: turns('<image>\nq', 'a'),
    }),
    JSON.stringify({ image: 'coco/train2017/000000033471.jpg', conversations: turns('<image>\nq', 'a') }),
    JSON.stringify({ id: 'noconv', image: 'coco/train2017/000000033471.jpg' }),
    JSON.stringify({ id: 'strconv', conversations: 'human: hi' }),
    JSON.stringify({ id: 'numval', conversations: [{ from: 'human', value: 5 }] }),
    JSON.stringify({ id: { nested: 1 }, conversations: [] }),
    '{"id": "broken", "conversations": [nope, {"from" "human"}]}',
    '"just a string"',
  ];
  // Interleave so bad records sit between good ones (and across partition cuts).
  const pieces: string[] = [];
  const all = [...good, ...textOnly];
  for (let k = 0; k < Math.max(all.length, bad.length); k++) {
    if (k < all.length) pieces.push(all[k]);
    if (k < bad.length) pieces.push(bad[k]);
  }
  return { pieces, expectGood: all.length };
}

const EXPECTED_QUARANTINE: Record<string, string> = {
  trav: 'unsafe-image-path',
  abs: 'unsafe-image-path',
  link: 'unsafe-image-path',
  gone: 'missing-image',
  noconv: 'missing-field',
  strconv: 'wrong-type',
  numval: 'wrong-type',
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-llava-json-'));
  root = join(dir, 'llava665k');
  const formats = ['jpeg', 'jpeg', 'png', 'jpeg', 'jpeg', 'webp'] as const;
  for (const [i, p] of IMAGE_PATHS.entries()) {
    const bytes = await drawDemoImage(p, formats[i]);
    images.set(p, bytes);
    await mkdir(dirname(join(root, p)), { recursive: true });
    await writeFile(join(root, p), bytes);
  }
  await writeFile(join(dir, 'secret.jpg'), 'not yours');
  await symlink(join(dir, 'secret.jpg'), join(root, 'coco/train2017/evil.jpg'));
  annotations = join(root, 'llava_v1_5_mix665k.json');
  await writeFile(annotations, jsonArrayText(fixturePieces().pieces));
  s3 = await startS3(['data']);
});
after(async () => {
  await s3.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('llava-json reader', () => {
  it('reads records with their images, text-only records, meta, and quarantines each bad record', async () => {
    const r = await readEverything(reader, annotations);
    const { pieces, expectGood } = fixturePieces();
    assert.equal(
      r.records.length + r.quarantined.length,
      pieces.length,
      'records seen = yielded + quarantined',
    );
    assert.equal(r.records.length, expectGood);

    const byId = new Map(r.records.map((x) => [x.id, x]));
    const coco = byId.get('1000');
    assert.ok(coco, 'numeric ids are coerced to strings');
    assert.equal(coco.source, 'llava-json/coco');
    assert.deepEqual(coco.meta, { model: 'gpt-4-0314' });
    assert.equal(coco.images.length, 1);
    assert.equal(coco.images[0].path, IMAGE_PATHS[0]);
    assert.deepEqual(
      Buffer.from(coco.images[0].bytes),
      Buffer.from(images.get(IMAGE_PATHS[0]) as Uint8Array),
    );
    assert.equal(coco.conversations[0].value, '<image>\nWhat is "this" [0]? {é😀}');
    assert.equal(coco.conversations[1].value, 'A \\ thing ]}, number 0.');
    assert.match(coco.origin, /llava_v1_5_mix665k\.json#item=0$/);

    assert.deepEqual(
      r.records.map((x) => x.source),
      [
        'llava-json/coco',
        'llava-json/gqa',
        'llava-json/ocr_vqa',
        'llava-json/textvqa',
        'llava-json/vg',
        'llava-json/vg',
        'llava-json/text-only',
        'llava-json/text-only',
        'llava-json/text-only',
      ],
    );
    for (const p of IMAGE_PATHS) {
      const rec = r.records.find((x) => x.images[0]?.path === p);
      assert.deepEqual(Buffer.from(rec?.images[0].bytes ?? []), Buffer.from(images.get(p) as Uint8Array), p);
    }
    const text = byId.get('text-1');
    assert.deepEqual(text?.images, []);
    assert.deepEqual(text?.meta, { model: 'sharegpt' });

    // Item indices in origins follow the array; every index appears exactly once.
    const indices = [...r.records.map((x) => x.origin), ...r.quarantined.map((q) => q.origin)]
      .map((o) => Number(/#item=(\d+)$/.exec(o)?.[1]))
      .sort((a, b) => a - b);
    assert.deepEqual(
      indices,
      pieces.map((_, i) => i),
    );

    for (const [id, reason] of Object.entries(EXPECTED_QUARANTINE)) {
      const q = r.quarantined.find((x) => x.id === id);
      assert.equal(q?.reason, reason, id);
      assert.equal(q?.stage, 'read');
    }
    const reasons = r.quarantined.map((q) => q.reason).sort();
    assert.deepEqual(reasons, [
      'missing-field',
      'missing-id',
      'missing-image',
      'unreadable-record',
      'unsafe-image-path',
      'unsafe-image-path',
      'unsafe-image-path',
      'wrong-type',
      'wrong-type',
      'wrong-type',
      'wrong-type',
    ]);
    assert.match(r.quarantined.find((q) => q.id === 'link')?.message ?? '', /outside the image root/);
    assert.match(r.quarantined.find((q) => q.id === 'numval')?.message ?? '', /conversations\[0\]\.value/);
    assert.equal(r.quarantined.find((q) => q.reason === 'unreadable-record')?.source, 'llava-json');
  });

  it('yields exactly the full read for every partition size', async () => {
    const full = summary(await readEverything(reader, annotations));
    for (const targetBytes of [1, 64, 300, 1000, 4000]) {
      const parts = await readEverything(reader, annotations, { targetBytes });
      assert.ok(targetBytes > 1000 || parts.partitions > 1, `${targetBytes}: ${parts.partitions} partitions`);
      assert.deepEqual(summary(parts), full, `targetBytes ${targetBytes}`);
    }
  });

  it('reads the same from S3 (annotations and image root), symlinks aside', async () => {
    await uploadTree(root, 's3://data/llava665k');
    const localRead = await readEverything(reader, annotations, { targetBytes: 500 });
    const local = summary(localRead);
    const linkOrigin = localRead.quarantined.find((q) => q.id === 'link')?.origin;
    const remote = await readEverything(reader, 's3://data/llava665k/llava_v1_5_mix665k.json', {
      targetBytes: 500,
    });
    const fromS3 = summary(remote).map((l) => l.replace('s3://data/llava665k', root));
    // The symlink is not uploaded, so on S3 that record is a missing image instead of an unsafe path.
    assert.deepEqual(
      fromS3,
      local.map((l) => (l === `Q ${linkOrigin} unsafe-image-path` ? `Q ${linkOrigin} missing-image` : l)),
    );
    const gqa = remote.records.find((x) => x.source === 'llava-json/gqa');
    assert.deepEqual(
      Buffer.from(gqa?.images[0].bytes ?? []),
      Buffer.from(images.get(IMAGE_PATHS[1]) as Uint8Array),
    );
  });

  it('fails with SourceFileError naming a file that is not a JSON array', async () => {
    const notArray = join(dir, 'not-array.json');
    await writeFile(notArray, '{"id": 1, "conversations": []}\n');
    await assert.rejects(
      readEverything(reader, notArray),
      (err: unknown) =>
        err instanceof SourceFileError && err.message.startsWith(`${notArray}: not a valid JSON array`),
    );
    const jsonl = join(dir, 'lines.json');
    await writeFile(jsonl, `${'{"id": 1}\n'.repeat(50)}`);
    await assert.rejects(
      readEverything(reader, jsonl, { targetBytes: 100 }),
      /lines\.json: not a valid JSON array/,
    );
    const content = await readFile(annotations);
    const truncated = join(dir, 'truncated.json');
    await writeFile(truncated, content.subarray(0, content.length - 40));
    await assert.rejects(
      readEverything(reader, truncated),
      /truncated\.json: not a valid JSON array: file ends/,
    );
  });
});
