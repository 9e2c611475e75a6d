// Demo data for the json families in their release layouts (LLaVA-Pretrain json + images.zip, the 665K mix json +
// image folders, Cambrian jsonl + folders and a tar, LLaMA-Factory messages), with bad records to quarantine.
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';
import { type DemoImageFormat, drawDemoImage } from '../images.ts';

const FORMATS: DemoImageFormat[] = ['jpeg', 'png', 'webp'];

const CAPTIONS = [
  'a red square and a blue square on a soft gradient',
  'three coloured blocks arranged diagonally',
  'an abstract poster with overlapping rectangles',
  'a minimalist composition of warm and cool tones',
];

async function writeImage(root: string, path: string, index: number): Promise<void> {
  // The file extension says jpeg for most, like the real datasets; bytes are whatever format was drawn.
  const bytes = await drawDemoImage(path, FORMATS[index % FORMATS.length]);
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), bytes);
}

function arrayText(items: string[]): string {
  return `[\n${items.map((s) => `  ${s}`).join(',\n')}\n]\n`;
}

/** LLaVA-Pretrain: `pretrain/blip_laion_cc_sbu_558k.json` + `pretrain/images.zip` (members `00453/004539375.jpg`). */
async function writePretrain(dir: string, count: number): Promise<void> {
  const root = join(dir, 'pretrain');
  await mkdir(root, { recursive: true });
  const zip = new yazl.ZipFile();
  const items: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = String(4539375 + i * 104729).padStart(9, '0');
    const image = `${id.slice(0, 5)}/${id}.jpg`;
    zip.addBuffer(Buffer.from(await drawDemoImage(image, FORMATS[i % 3])), image);
    const question =
      i % 2
        ? '<image>\nWrite a terse but informative summary of the picture.'
        : 'Describe the image.\n<image>';
    items.push(
      JSON.stringify({
        id,
        image,
        conversations: [
          { from: 'human', value: question },
          { from: 'gpt', value: CAPTIONS[i % CAPTIONS.length] },
        ],
      }),
    );
  }
  zip.end();
  const turns = [
    { from: 'human', value: '<image>\nDescribe the image.' },
    { from: 'gpt', value: 'nothing' },
  ];
  items.push(JSON.stringify({ id: 'demo-missing', image: '00999/009999999.jpg', conversations: turns }));
  items.push(JSON.stringify({ id: 'demo-traversal', image: '../../etc/passwd', conversations: turns }));
  await pipeline(zip.outputStream, createWriteStream(join(root, 'images.zip')));
  await writeFile(join(root, 'blip_laion_cc_sbu_558k.json'), arrayText(items));
}

const MIX_SUBSETS = [
  (i: number) => `coco/train2017/${String(33471 + i).padStart(12, '0')}.jpg`,
  (i: number) => `gqa/images/${2354786 + i}.jpg`,
  (i: number) => `ocr_vqa/images/${140031996 + i}.jpg`,
  (i: number) => `textvqa/train_images/${(0x0a0bc918 + i).toString(16)}.jpg`,
  (i: number) => `vg/VG_100K${i % 2 ? '_2' : ''}/${10 + i}.jpg`,
];

/**
 * LLaVA-1.5 665K: `llava665k/llava_v1_5_mix665k.json` with the image folders beside it (coco/, gqa/, ...), as
 * in LLaVA's `playground/data`, so the default image root (the json's folder) finds them.
 */
async function writeMix665k(dir: string, count: number): Promise<void> {
  const root = join(dir, 'llava665k');
  const items: string[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 6 === 5) {
      // Text-only conversations (ShareGPT in the real mix) have no image.
      items.push(
        JSON.stringify({
          id: `i6uPtLn_${i}`,
          model: '',
          conversations: [
            { from: 'human', value: `Write one sentence about the number ${i}.` },
            { from: 'gpt', value: `${i} is ${i % 2 ? 'odd' : 'even'}.` },
          ],
        }),
      );
      continue;
    }
    const image = MIX_SUBSETS[i % MIX_SUBSETS.length](i);
    await writeImage(root, image, i);
    // Numeric ids occur in the real file.
    const id = i % 4 === 0 ? 100000 + i : `${String(i).padStart(9, '0')}`;
    items.push(
      JSON.stringify({
        id,
        image,
        conversations: [
          { from: 'human', value: '<image>\nWhat colours are the rectangles?' },
          { from: 'gpt', value: 'They are drawn in several hues.' },
          { from: 'human', value: 'How many are there?' },
          { from: 'gpt', value: 'Three.' },
        ],
      }),
    );
  }
  const turns = [
    { from: 'human', value: '<image>\nWhat is this?' },
    { from: 'gpt', value: 'unknown' },
  ];
  items.push(
    JSON.stringify({ id: 'demo-missing', image: 'coco/train2017/999999999999.jpg', conversations: turns }),
  );
  items.push(
    JSON.stringify({ id: 'demo-traversal', image: 'coco/../../../secret.jpg', conversations: turns }),
  );
  items.push('{"id": "demo-bad-item", "conversations": [oops]}');
  await mkdir(root, { recursive: true });
  await writeFile(join(root, 'llava_v1_5_mix665k.json'), arrayText(items));
}

/** Cambrian: `cambrian/Cambrian7M_withsystemprompt.jsonl`, images in folders plus `ai2d.tar` beside them. */
async function writeCambrian(dir: string, count: number): Promise<void> {
  const root = join(dir, 'cambrian');
  const lines: string[] = [];
  const tarMembers: { name: string; bytes: Uint8Array }[] = [];
  const system = { from: 'system', value: 'Answer the questions.' };
  for (let i = 0; i < count; i++) {
    const conversations = (q: string) => [
      system,
      { from: 'human', value: q },
      { from: 'gpt', value: `Answer ${i}.` },
    ];
    if (i % 7 === 6) {
      lines.push(
        JSON.stringify({
          id: `text_${i}`,
          conversations: conversations(`Question ${i}?`),
          source: 'sharegpt',
        }),
      );
      continue;
    }
    const subset = ['coco', 'sharegpt4v', 'ai2d'][i % 3];
    const image = `${subset}/images/${i}.jpg`;
    if (subset === 'ai2d') {
      tarMembers.push({ name: image, bytes: await drawDemoImage(image, FORMATS[i % 3]) });
    } else await writeImage(root, image, i);
    const row: Record<string, unknown> = {
      id: `${subset}_${i}`,
      image,
      conversations: conversations('<image>\nWhat is shown?'),
    };
    if (i % 2 === 0) row.source = `${subset}.json`;
    lines.push(JSON.stringify(row));
  }
  lines.push('{"id": "demo-bad-line", "image": "coco/images/0.jpg", "conversations": [');
  lines.push(
    JSON.stringify({
      id: 'demo-missing',
      image: 'coco/images/99999.jpg',
      conversations: [system, { from: 'human', value: '<image>' }],
    }),
  );
  lines.push(
    JSON.stringify({
      id: 'demo-absolute',
      image: '/etc/hostname',
      conversations: [system, { from: 'human', value: '<image>' }],
    }),
  );
  await mkdir(root, { recursive: true });
  await writeTar(join(root, 'ai2d.tar'), tarMembers);
  await writeFile(join(root, 'Cambrian7M_withsystemprompt.jsonl'), `${lines.join('\n')}\n`);
}

/**
 * LLaMA-Factory's `mllm_demo.json` shape: `messages/mllm_demo.json`, OpenAI-style messages without ids, images
 * beside the file; a system message on some, one text-only record and one video record (quarantined).
 */
async function writeMessages(dir: string, count: number): Promise<void> {
  const root = join(dir, 'messages');
  const records: object[] = [];
  for (let i = 0; i < count; i++) {
    const system = i % 3 === 0 ? [{ role: 'system', content: 'You are a concise visual assistant.' }] : [];
    if (i === count - 1) {
      records.push({
        messages: [
          { role: 'user', content: '<video>What happens in the clip?' },
          { role: 'assistant', content: 'A square slides to the right.' },
        ],
        videos: ['clips/0.mp4'],
      });
    } else if (i % 5 === 4) {
      records.push({
        messages: [
          ...system,
          { role: 'user', content: `Name a colour (${i}).` },
          { role: 'assistant', content: 'Teal.' },
        ],
      });
    } else {
      const image = `images/${i}.jpg`;
      await writeImage(root, image, i);
      records.push({
        messages: [
          ...system,
          { role: 'user', content: '<image>What is in the picture?' },
          { role: 'assistant', content: CAPTIONS[i % CAPTIONS.length] },
        ],
        images: [image],
      });
    }
  }
  await writeFile(join(root, 'mllm_demo.json'), JSON.stringify(records, null, 2));
}

/** A plain ustar archive via tar-stream (the demo must not depend on a system `tar`). */
async function writeTar(path: string, members: { name: string; bytes: Uint8Array }[]): Promise<void> {
  const { pack } = await import('tar-stream');
  const p = pack();
  for (const m of members)
    p.entry({ name: m.name, size: m.bytes.byteLength, mtime: new Date(0) }, Buffer.from(m.bytes));
  p.finalize();
  await pipeline(p as unknown as Readable, createWriteStream(path));
}

/** Write the json families under `dir` (`pretrain/`, `llava665k/`, `cambrian/`, `messages/`). */
export async function writeJsonDemoData(dir: string, count = 30): Promise<void> {
  await writePretrain(dir, count);
  await writeMix665k(dir, count);
  await writeCambrian(dir, count);
  await writeMessages(dir, Math.ceil(count / 2));
}
