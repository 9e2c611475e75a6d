// The near-duplicate and decontamination fixtures: llava-json components a and b whose images and texts are
// edited copies of each other (each case commented with what near_dedup must decide), and an evaluation set.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { keyedHash64 } from '../../core/keyed-hash.ts';
import { original } from '../../dev/near-dup-images.ts';
import { parseSpec } from '../../manifests/spec.ts';
import type { MixtureSpec } from '../../manifests/spec-schema.ts';

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

/** Writes the fixtures under `dir` and returns the near_dedup spec over components a and b. */
export async function writeNearDupFixtures(dir: string): Promise<MixtureSpec> {
  const img = join(dir, 'images');
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
    join(dir, 'eval.json'),
    JSON.stringify([
      sample('e0', 'e0.jpg', 'What colour is the roof?', 'Red.'),
      sample('e1', 'e1.jpg', 'How many towers are there on the hill?', 'Three.'),
    ]),
  );
  await writeFile(join(dir, 'a.json'), JSON.stringify(a));
  await writeFile(join(dir, 'b.json'), JSON.stringify(b));
  return parseSpec(
    `name: near\nseed: 3\noutput:\n  shard_rows: 4\nnear_dedup:\n  images: {max_distance: 10}\n  text: {threshold: 0.7, ngram: 3, bands: 32}\ncomponents:\n` +
      ['a', 'b']
        .map(
          (c) =>
            `  - name: ${c}\n    source:\n      format: llava-json\n      uris: ["${join(dir, `${c}.json`)}"]\n      image_root: "${img}"\n`,
        )
        .join(''),
    { file: 'near.yaml', env: {} },
  );
}

/** The same components with near_dedup and decontamination against the fixtures' evaluation set. */
export function decontaminationSpec(dir: string): MixtureSpec {
  return parseSpec(
    `name: decontam\nseed: 3\noutput:\n  shard_rows: 4\nnear_dedup:\n  images: {max_distance: 10}\n` +
      `decontaminate:\n  - name: evalset\n    format: llava-json\n    uris: ["${join(dir, 'eval.json')}"]\n    image_root: "${join(dir, 'images')}"\n    ngram: 3\n` +
      `components:\n${['a', 'b']
        .map(
          (c) =>
            `  - name: ${c}\n    source:\n      format: llava-json\n      uris: ["${join(dir, `${c}.json`)}"]\n      image_root: "${join(dir, 'images')}"\n`,
        )
        .join('')}`,
    { file: 'decontam.yaml', env: {} },
  );
}
