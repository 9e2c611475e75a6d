// near_dedup in a build: re-encoded/edited copies across and within components are dropped with the kept sample's
// id in their quarantine record, exact copies stay exact dedup's, different questions on one image stay; the
// output is byte-identical at any concurrency and partitioning; scope: within keeps cross-component copies.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { original } from '../../bench/near-dedup-images.ts';
import { keyedHash64 } from '../../core/keyed-hash.ts';
import { verifyBuild } from '../../manifests/manifest.ts';
import { parseSpec } from '../../manifests/spec.ts';
import type { MixtureSpec } from '../../manifests/spec-schema.ts';
import { type BuildOptions, makeBuildContext } from '../../pipelines/context.ts';
import { runBuildInProcess } from '../../pipelines/executor-inprocess.ts';

let tmp = '';
let spec: MixtureSpec;

const WORDS =
  'river stone bridge market yellow window tower garden lamp street harbour cloud ladder orchard kettle violin meadow candle anchor saddle'.split(
    ' ',
  );
function text(i: number): string {
  return Array.from({ length: 30 }, (_, k) => WORDS[Number(keyedHash64(1, `t${i}`, String(k)) % 20n)]).join(
    ' ',
  );
}
const sample = (id: string, image: string, q: string, a: string) => ({
  id,
  image,
  conversations: [
    { from: 'human', value: `<image>\n${q}` },
    { from: 'gpt', value: a },
  ],
});

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'mixforge-near-dedup-'));
  const img = join(tmp, 'images');
  await mkdir(img);
  const put = async (name: string, bytes: Buffer) => writeFile(join(img, name), bytes);
  const o: Buffer[] = [];
  for (let i = 0; i < 11; i++) {
    o.push(await original(i));
    await put(`o${i}.jpg`, o[i]);
  }
  await put('b0.jpg', await sharp(o[0]).resize(200).jpeg({ quality: 80 }).toBuffer());
  await put('b1.jpg', await sharp(o[1]).greyscale().jpeg({ quality: 85 }).toBuffer());
  await put('b2.jpg', await sharp(o[2]).jpeg({ quality: 40 }).toBuffer());
  await put('b3.jpg', await sharp(o[3]).webp({ quality: 70 }).toBuffer());
  await put('b4.jpg', await sharp(o[4]).jpeg({ quality: 60 }).toBuffer());
  await put('b6.jpg', await sharp(o[6]).greyscale().jpeg({ quality: 90 }).toBuffer());
  const m = await sharp(o[8]).metadata();
  await put(
    'a9.jpg',
    await sharp(o[8])
      .extract({ left: 6, top: 4, width: m.width - 12, height: m.height - 8 })
      .jpeg({ quality: 90 })
      .toBuffer(),
  );
  const q = 'Describe the picture.';
  const a = [
    ...Array.from({ length: 9 }, (_, i) => sample(`a${i}`, `o${i}.jpg`, q, text(i))),
    sample('a9', 'a9.jpg', q, text(8)), // a cropped copy of a8, same text: a near-duplicate inside component a
  ];
  const b = [
    sample('b0', 'b0.jpg', q, text(0)), // resized copy, same text → near-duplicate-image of a0
    sample('b1', 'b1.jpg', q, text(1)), // greyscale copy → near-duplicate-image of a1
    sample('b2', 'b2.jpg', q, text(2)), // q40 copy → near-duplicate-image of a2
    // A webp copy whose text differs in case and punctuation only: a text near-duplicate.
    sample('b3', 'b3.jpg', q, `${text(3).toUpperCase()}!`),
    sample('b4', 'b4.jpg', q, text(4).replace(' ', ' indeed ')), // one word inserted → near-duplicate-text
    sample('b5', 'o5.jpg', q, text(5)), // the same bytes and text: exact dedup's
    sample('b6', 'b6.jpg', 'How many towers are there?', 'Two towers.'), // same image, another question: kept
    sample('b7', 'o10.jpg', q, text(7)), // same text, an unrelated image: kept
    sample('b8', 'o7.jpg', q, text(7).replaceAll(' ', ', ')), // a7's image, its text with commas → near-duplicate-text
  ];
  // An evaluation set: a resized copy of o5, and a question sharing the 3-gram "how many towers" with b6's.
  await put('e0.jpg', await sharp(o[5]).resize(240).jpeg({ quality: 75 }).toBuffer());
  await put('e1.jpg', await original(20));
  await writeFile(
    join(tmp, 'eval.json'),
    JSON.stringify([
      sample('e0', 'e0.jpg', 'What colour is the roof?', 'Red.'),
      sample('e1', 'e1.jpg', 'How many towers are there on the hill?', 'Three.'),
    ]),
  );
  await writeFile(join(tmp, 'a.json'), JSON.stringify(a));
  await writeFile(join(tmp, 'b.json'), JSON.stringify(b));
  spec = parseSpec(
    `name: near\nseed: 3\noutput:\n  shard_rows: 4\nnear_dedup:\n  images: {max_distance: 10}\n  text: {threshold: 0.7, ngram: 3, bands: 32}\ncomponents:\n` +
      ['a', 'b']
        .map(
          (c) =>
            `  - name: ${c}\n    source:\n      format: llava-json\n      uris: ["${join(tmp, `${c}.json`)}"]\n      image_root: "${img}"\n`,
        )
        .join(''),
    { file: 'near.yaml', env: {} },
  );
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function publishedHashes(out: string): Record<string, string> {
  const files = [
    'manifest.json',
    ...readdirSync(join(out, 'shards')).map((f) => `shards/${f}`),
    'quarantine/quarantine.parquet',
  ];
  return Object.fromEntries(
    files.map((f) => [
      f,
      createHash('sha256')
        .update(readFileSync(join(out, f)))
        .digest('hex'),
    ]),
  );
}

async function build(name: string, options: Partial<BuildOptions> = {}, concurrency = 2, s = spec) {
  const out = join(tmp, name);
  const manifest = await runBuildInProcess(makeBuildContext(s, out, options), { concurrency });
  return { out, manifest };
}

describe('near_dedup in a build', () => {
  let reference: Record<string, string>;

  it('drops near-duplicates under their reasons, with the kept id in the quarantine record', async () => {
    const { out, manifest } = await build('ref', { keepIntermediate: true });
    reference = publishedHashes(out);
    assert.deepEqual(await verifyBuild(out), []);
    const by = Object.fromEntries(manifest.components.map((c) => [c.name, c.counts]));
    assert.deepEqual(by.a.dropped, { 'near-duplicate-image': 1 });
    assert.equal(by.a.kept, 9);
    assert.deepEqual(by.b.dropped, { dedup: 1, 'near-duplicate-image': 3, 'near-duplicate-text': 3 });
    assert.equal(by.b.kept, 2);
    const q = readFileSync(join(out, '_build', 'near-dup', 'quarantine.jsonl'), 'utf8');
    const records = q
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; reason: string; message: string });
    const of = Object.fromEntries(records.map((r) => [r.id, r]));
    for (const i of [0, 1, 2]) {
      assert.equal(of[`b/b${i}`]?.reason, 'near-duplicate-image');
      assert.match(of[`b/b${i}`].message, new RegExp(`near-duplicate of a/a${i} \\(a\\)`));
    }
    for (const i of [3, 4, 8]) assert.equal(of[`b/b${i}`]?.reason, 'near-duplicate-text');
    assert.match(of['b/b8'].message, /near-duplicate of a\/a7 \(a\): image distance 0/);
    // a8 and a9 are one cluster: the smaller take key stays, whichever it is.
    const inA = records.filter((r) => r.id.startsWith('a/'));
    assert.equal(inA.length, 1);
    assert.ok(['a/a8', 'a/a9'].includes(inA[0].id));
  });

  it('is byte-identical at any concurrency and partition size', async () => {
    const fine = await build('fine', { partitionRecords: 3 }, 4);
    assert.deepEqual(publishedHashes(fine.out), reference);
    const serial = await build('serial', { partitionRecords: 2, selectBucketRows: 3 }, 1);
    assert.deepEqual(publishedHashes(serial.out), reference);
  });

  it('scope: within leaves copies in another component alone', async () => {
    const within = {
      ...spec,
      near_dedup: {
        ...(spec.near_dedup as NonNullable<MixtureSpec['near_dedup']>),
        scope: 'within' as const,
      },
    };
    const { manifest } = await build('within', {}, 2, within);
    const by = Object.fromEntries(manifest.components.map((c) => [c.name, c.counts]));
    assert.deepEqual(by.a.dropped, { 'near-duplicate-image': 1 });
    assert.deepEqual(by.b.dropped, { dedup: 1 });
  });
});

describe('decontaminate in a build', () => {
  it('drops samples whose image is near an evaluation image or whose question shares an n-gram, per set', async () => {
    const dirty = parseSpec(
      `name: decontam\nseed: 3\noutput:\n  shard_rows: 4\nnear_dedup:\n  images: {max_distance: 10}\n` +
        `decontaminate:\n  - name: evalset\n    format: llava-json\n    uris: ["${join(tmp, 'eval.json')}"]\n    image_root: "${join(tmp, 'images')}"\n    ngram: 3\n` +
        `components:\n${['a', 'b']
          .map(
            (c) =>
              `  - name: ${c}\n    source:\n      format: llava-json\n      uris: ["${join(tmp, `${c}.json`)}"]\n      image_root: "${join(tmp, 'images')}"\n`,
          )
          .join('')}`,
      { file: 'decontam.yaml', env: {} },
    );
    const { out, manifest } = await build('decontam', {}, 2, dirty);
    assert.deepEqual(await verifyBuild(out), []);
    const by = Object.fromEntries(manifest.components.map((c) => [c.name, c.counts]));
    // a5 (o5) and its exact copy b5 are contaminated by e0's image; b6 by e1's question.
    assert.deepEqual(by.a.dropped, { 'contaminated:evalset': 1, 'near-duplicate-image': 1 });
    assert.deepEqual(by.b.dropped, {
      'contaminated:evalset': 2,
      'near-duplicate-image': 3,
      'near-duplicate-text': 3,
    });
    const again = await build('decontam-serial', { partitionRecords: 2 }, 1, dirty);
    assert.deepEqual(publishedHashes(again.out), publishedHashes(out));
  });
});
