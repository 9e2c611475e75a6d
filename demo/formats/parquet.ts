// Demo data for the three parquet families, in their real Hugging Face layouts: LLaVA-ReCap-CC3M, two
// LLaVA-OneVision subsets and DocMatix, with real JPEG/PNG/WebP bytes and a couple of bad rows each (quarantine).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ParquetField } from '../../core/parquet/write.ts';
import { writeParquet } from '../../core/parquet/write.ts';
import { type DemoImageFormat, drawDemoImage } from '../images.ts';

const FORMATS: DemoImageFormat[] = ['jpeg', 'png', 'webp'];

// HF datasets writes every column nullable; the bad rows below rely on that.
const strings = (...names: string[]): ParquetField[] =>
  names.map((name) => ({ name, type: 'string', nullable: true }));

/** A list of structs (a `[{…}]` feature). */
const listOfStructs = (name: string, fields: ParquetField[]): ParquetField => ({
  name,
  type: 'list',
  nullable: true,
  element: { name: 'element', type: 'struct', nullable: true, fields },
});

const IMAGE_FIELDS: ParquetField[] = [{ name: 'bytes', type: 'binary', nullable: true }, ...strings('path')];

const IMAGE_CONVERSATION_FIELDS: ParquetField[] = [
  ...strings('id'),
  { name: 'image', type: 'struct', nullable: true, fields: IMAGE_FIELDS },
  listOfStructs('conversations', strings('from', 'value')),
  ...strings('data_source'),
];

const DOCMATIX_FIELDS: ParquetField[] = [
  listOfStructs('images', IMAGE_FIELDS),
  listOfStructs('texts', strings('user', 'assistant', 'source')),
];

/** The `huggingface` footer entry HF datasets writes, so the files look like the real releases to tools. */
function hfMetadata(features: Record<string, unknown>): Record<string, string> {
  return { huggingface: JSON.stringify({ info: { features } }) };
}

const STRING = { dtype: 'string', _type: 'Value' };
const IMAGE_CONVERSATION_FEATURES = {
  id: STRING,
  image: { _type: 'Image' },
  conversations: [{ from: STRING, value: STRING }],
  data_source: STRING,
};

const RECAP_PROMPTS = [
  'What is happening in this image?',
  'Describe this image in detail.',
  'What do you see in this picture?',
  'Can you explain what this image shows?',
  'Give a detailed description of the scene.',
];

const PALETTE = ['amber', 'teal', 'crimson', 'violet', 'olive', 'coral', 'indigo', 'saffron'];
const SHAPES = ['rectangles', 'panels', 'blocks', 'tiles'];

/** A multi-sentence dense caption in the ReCap style (the drawn images really are shapes over a gradient). */
function denseCaption(i: number): string {
  const a = PALETTE[i % PALETTE.length];
  const b = PALETTE[(i * 3 + 1) % PALETTE.length];
  const c = PALETTE[(i * 5 + 2) % PALETTE.length];
  const shape = SHAPES[i % SHAPES.length];
  return [
    `The image is a flat, abstract composition built from three overlapping ${shape} set against a diagonal gradient.`,
    `The background fades from a pale ${a} tone in the upper left corner to a deep, shadowed ${b} in the lower right.`,
    `The ${shape} are ${a}, ${b} and ${c}, each with crisp edges and no visible texture, and they are staggered so that one partly covers the next.`,
    i % 2
      ? 'There are no people, text or recognisable objects; the arrangement reads like a poster or a user-interface mock-up.'
      : 'Nothing in the frame suggests depth or a light source, which gives the picture the clean look of vector graphics.',
  ].join(' ');
}

async function image(name: string, i: number): Promise<Uint8Array> {
  return drawDemoImage(name, FORMATS[i % FORMATS.length]);
}

async function writeRecap(dir: string): Promise<void> {
  const rows: Record<string, unknown>[] = [];
  for (let i = 0; i < 36; i++) {
    const id = `GCC_train_${String(2_000_000 + i * 7919).padStart(9, '0')}`;
    const prompt = RECAP_PROMPTS[i % RECAP_PROMPTS.length];
    rows.push({
      id,
      image: { bytes: await image(`recap-${i}`, i), path: `${id}.jpg` },
      conversations: [
        { from: 'human', value: i % 6 === 5 ? `${prompt}\n<image>` : `<image>\n${prompt}` },
        { from: 'gpt', value: denseCaption(i) },
      ],
      data_source: 'cc3m',
    });
  }
  // Bad rows: an image referenced by path but not embedded, and a caption turn that is null.
  (rows[9].image as { bytes: Uint8Array | null }).bytes = null;
  (rows[22].conversations as { value: string | null }[])[1].value = null;
  const folder = join(dir, 'recap-cc3m', 'data');
  await mkdir(folder, { recursive: true });
  const bytes = await writeParquet({
    fields: IMAGE_CONVERSATION_FIELDS,
    rows,
    rowGroupSize: 10,
    metadata: hfMetadata(IMAGE_CONVERSATION_FEATURES),
  });
  await writeFile(join(folder, 'train-00000-of-00001.parquet'), bytes);
}

const CLEVR_QUESTIONS = [
  [
    'Subtract all red cubes. Subtract all small spheres. How many objects are left?',
    'There are 4 objects left.',
  ],
  ['Subtract all large rubber cylinders. How many cylinders are left?', 'Two cylinders are left.'],
  ['Add 2 purple balls. How many purple balls exist?', 'There are 3 purple balls.'],
];

const AI2D_QUESTIONS = [
  [
    'Which stage of the cycle is shown at the top of the diagram?\nA. egg\nB. larva\nC. pupa\nD. adult\nAnswer with the option letter.',
    'B',
  ],
  [
    'The diagram shows layers of the Earth. Which layer is the thinnest?',
    'The crust is the thinnest layer; it sits on top of the mantle and is only a few tens of kilometres deep.',
  ],
];

async function writeOneVisionSubset(
  dir: string,
  subset: string,
  qa: string[][],
  count: number,
  bad: (rows: Record<string, unknown>[]) => void,
): Promise<void> {
  const rows: Record<string, unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const [q, a] = qa[i % qa.length];
    rows.push({
      id: `${subset.split('(')[0].toLowerCase()}_${String(i).padStart(5, '0')}`,
      image: { bytes: await image(`onevision-${subset}-${i}`, i + 1), path: null },
      conversations: [
        { from: 'human', value: `<image>\n${q}` },
        { from: 'gpt', value: a },
        ...(i % 3 === 0
          ? [
              { from: 'human', value: 'Explain how you got the answer.' },
              {
                from: 'gpt',
                value: 'I located the relevant parts of the picture first and then counted or compared them.',
              },
            ]
          : []),
      ],
      data_source: subset,
    });
  }
  bad(rows);
  const folder = join(dir, 'onevision', subset);
  await mkdir(folder, { recursive: true });
  const bytes = await writeParquet({
    fields: IMAGE_CONVERSATION_FIELDS,
    rows,
    rowGroupSize: 8,
    metadata: hfMetadata(IMAGE_CONVERSATION_FEATURES),
  });
  await writeFile(join(folder, 'train-00000-of-00001.parquet'), bytes);
}

async function writeDocmatix(dir: string): Promise<void> {
  const rows: Record<string, unknown>[] = [];
  for (let i = 0; i < 24; i++) {
    const pages = 1 + (i % 3);
    const images = [];
    for (let k = 0; k < pages; k++)
      images.push({ bytes: await image(`docmatix-${i}-${k}`, i + k), path: null });
    const texts = Array.from({ length: 1 + ((i + 1) % 3) }, (_, k) => ({
      user: [
        `What is the invoice total stated on page ${1 + (k % pages)}?`,
        'Who is the document addressed to?',
        'What is the main purpose of this document?',
      ][k],
      assistant: [
        `The invoice total is $${(1250 + i * 37.5).toFixed(2)}, including tax.`,
        `It is addressed to the accounts department of Example Corp ${i}.`,
        'The document requests payment for consulting services delivered in the previous quarter.',
      ][k],
      source: `PDFA key: ${4100 + i}`,
    }));
    rows.push({ images, texts });
  }
  // Bad rows: a document whose page images are missing, and a QA pair with no answer.
  rows[5].images = [];
  (rows[14].texts as { assistant: string | null }[])[0].assistant = null;
  const folder = join(dir, 'docmatix', 'data');
  await mkdir(folder, { recursive: true });
  const bytes = await writeParquet({
    fields: DOCMATIX_FIELDS,
    rows,
    rowGroupSize: 8,
    metadata: hfMetadata({
      images: [{ _type: 'Image' }],
      texts: [{ user: STRING, assistant: STRING, source: STRING }],
    }),
  });
  await writeFile(join(folder, 'train-00000-of-00001.parquet'), bytes);
}

/** Write the parquet demo sources under `dir` (recap-cc3m/, onevision/<subset>/, docmatix/). */
export async function writeParquetDemoData(dir: string): Promise<void> {
  await writeRecap(dir);
  await writeOneVisionSubset(dir, 'CLEVR-Math(MathV360K)', CLEVR_QUESTIONS, 20, (rows) => {
    rows[4].id = null;
  });
  await writeOneVisionSubset(dir, 'ai2d(gpt4v)', AI2D_QUESTIONS, 16, (rows) => {
    rows[11].conversations = null;
  });
  await writeDocmatix(dir);
}
