// Fixtures in the shapes community VLM fine-tuning files have (lmms-finetune, LLaMA-Factory, Cambrian, HF
// `datasets` parquet): system prompts, video records, id-less records, messages, path-only images, extra fields.
// Written here from scratch (JSON by hand, parquet by DuckDB and by hyparquet-writer), with the expected outcome.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ByteWriter, parquetWrite, type SchemaElement } from 'hyparquet-writer';
import { duckdbQuery, fixtureImages, sqlString } from './duckdb-fixtures.ts';

/** What a reader must make of a fixture file: kept ids in order and dropped counts by reason. */
export interface Expected {
  kept: string[];
  dropped: Record<string, number>;
}

export const SYSTEM_PROMPT = 'You are a careful visual assistant. Answer in one sentence.';
export const CAMBRIAN_SYSTEM = 'You are Cambrian, a helpful assistant.';

/**
 * LLaVA-shaped records (lmms-finetune's `example_data`, Cambrian's `_withsystemprompt` files), the same list for
 * a json array (llava-json) and a jsonl file (cambrian). `l4` has no id.
 */
export function llavaShapedRecords(): Record<string, unknown>[] {
  const qa = (q: string, a: string) => [
    { from: 'human', value: q },
    { from: 'gpt', value: a },
  ];
  return [
    {
      id: 'l0',
      image: 'images/0.jpg',
      system_prompt: SYSTEM_PROMPT,
      conversations: qa('<image>\nWhat is shown?', 'A striped pattern.'),
    },
    { id: 'l1', video: 'clips/1.mp4', conversations: qa('<video>\nWhat happens?', 'A ball rolls.') },
    {
      id: 'l2',
      image: 'images/1.png',
      video: 'clips/2.mp4',
      conversations: qa('<image>\n<video>\nCompare them.', 'They match.'),
    },
    { id: 'l3', image: 'images/2.webp', conversations: qa('<image>\nWhat is in the <video>?', 'Nothing.') },
    { image: 'images/0.jpg', conversations: qa('<image>\nColour?', 'Grey.') },
    {
      id: 'l5',
      image: 'images/1.png',
      conversations: qa('<image>\nDescribe it.', 'A pattern of dots.'),
      data_source: 'sharegpt4v',
      model: 'gpt-4v',
    },
    {
      id: 'l6',
      system_prompt: 'Two system prompts.',
      conversations: [{ from: 'system', value: 'And a system turn.' }, ...qa('Hi', 'Hello')],
    },
    {
      id: 'l7',
      image: 'images/2.webp',
      conversations: [
        { from: 'system', value: CAMBRIAN_SYSTEM },
        ...qa('<image>\nCount the dots.', 'Seven.'),
      ],
    },
  ];
}

export const LLAVA_SHAPED_EXPECTED: Expected = {
  kept: ['l0', 'l5', 'l7'],
  dropped: { 'unsupported-modality': 3, 'missing-id': 1, 'bad-roles': 1 },
};

/** OpenAI-style messages (LLaMA-Factory's `mllm_demo`): images as paths next to the file; `m4` has no id. */
export function messagesRecords(): Record<string, unknown>[] {
  return [
    {
      id: 'm0',
      messages: [
        { role: 'system', content: SYSTEM_PROMPT },
        { role: 'user', content: '<image>Who is in the picture?' },
        { role: 'assistant', content: 'Nobody, it is a pattern.' },
      ],
      images: ['images/0.jpg'],
    },
    {
      id: 'm1',
      messages: [
        { role: 'user', content: 'Say hello.' },
        { role: 'assistant', content: 'Hello.' },
      ],
      source_dataset: 'alpaca',
    },
    {
      id: 'm2',
      messages: [
        {
          role: 'user',
          content: [{ type: 'image' }, { type: 'text', text: 'What colour dominates?' }],
        },
        { role: 'assistant', content: 'Grey.' },
      ],
      images: ['images/1.png'],
    },
    {
      id: 'm3',
      messages: [
        { role: 'user', content: '<video>What happens next?' },
        { role: 'assistant', content: 'The ball stops.' },
      ],
      videos: ['clips/3.mp4'],
    },
    {
      messages: [
        { role: 'user', content: 'No id here.' },
        { role: 'assistant', content: 'Fine.' },
      ],
    },
    {
      id: 'm5',
      messages: [
        { role: 'user', content: '<image>Where is this?' },
        { role: 'assistant', content: 'Outside the root.' },
      ],
      images: ['../escape.jpg'],
    },
  ];
}

export const MESSAGES_EXPECTED: Expected = {
  kept: ['m0', 'm1', 'm2'],
  dropped: { 'unsupported-modality': 1, 'missing-id': 1, 'unsafe-image-path': 1 },
};

/** Images the records name, drawn by demo/images.ts into `<dir>/images`. */
export async function writeFixtureImages(dir: string): Promise<Uint8Array[]> {
  const images = await fixtureImages(3, 'community');
  await mkdir(join(dir, 'images'), { recursive: true });
  const names = ['0.jpg', '1.png', '2.webp'];
  await Promise.all(names.map((n, k) => writeFile(join(dir, 'images', n), images[k])));
  return images;
}

/** The records as a JSON array and as JSON lines. */
export async function writeJsonAndJsonl(dir: string, stem: string, records: object[]): Promise<void> {
  await writeFile(join(dir, `${stem}.json`), JSON.stringify(records, null, 2));
  await writeFile(join(dir, `${stem}.jsonl`), `${records.map((r) => JSON.stringify(r)).join('\n')}\n`);
}

const b64 = (b: Uint8Array) => sqlString(Buffer.from(b).toString('base64'));
const str = (s: string | undefined) => (s === undefined ? 'NULL' : sqlString(s));

/**
 * messages.parquet as HF `datasets` writes it for LLaMA-Factory-style data: `messages` list<struct<role, content>>,
 * `images` list<Image> where m0 embeds its bytes and m2, m5 carry only a `path` (resolved against image_root).
 */
export async function writeMessagesParquet(path: string, images: Uint8Array[]): Promise<void> {
  const rows = messagesRecords().map((r) => {
    const msgs = (r.messages as { role: string; content: unknown }[]).map(
      (m) =>
        `{'role': ${sqlString(m.role)}, 'content': ${sqlString(
          typeof m.content === 'string' ? m.content : '<image>\nWhat colour dominates?',
        )}}`,
    );
    const id = r.id as string | undefined;
    const imgs =
      id === 'm0'
        ? `[{'bytes': from_base64(${b64(images[0])}), 'path': NULL}]`
        : id === 'm2'
          ? `[{'bytes': NULL::BLOB, 'path': 'images/1.png'}]`
          : id === 'm5'
            ? `[{'bytes': NULL::BLOB, 'path': '../escape.jpg'}]`
            : 'NULL';
    const videos = r.videos ? `[${(r.videos as string[]).map(sqlString).join(', ')}]` : 'NULL';
    return `SELECT ${str(id)} AS id, [${msgs.join(', ')}] AS messages, ${imgs}::STRUCT(bytes BLOB, path VARCHAR)[] AS images, ${videos}::VARCHAR[] AS videos, ${str(r.source_dataset as string | undefined)} AS source_dataset`;
  });
  await duckdbQuery(`COPY (${rows.join(' UNION ALL ')}) TO ${sqlString(path)} (FORMAT parquet)`);
}

/** With image_root the parquet file reads like the JSON ones; without it, path-only images are missing. */
export const MESSAGES_PARQUET_NO_ROOT: Expected = {
  kept: ['m0', 'm1'],
  dropped: { 'unsupported-modality': 1, 'missing-id': 1, 'missing-image': 2 },
};

/**
 * A LLaVA-OneVision subset with the rows that must not be kept silently: a `video` column set, a `<video>` token,
 * plus a system_prompt column and an extra column. data_source names the subset.
 */
export async function writeOneVisionParquet(path: string, images: Uint8Array[]): Promise<void> {
  const turns = (q: string, a: string) =>
    `[{'from': 'human', 'value': ${sqlString(q)}}, {'from': 'gpt', 'value': ${sqlString(a)}}]`;
  const row = (id: string, image: number | null, q: string, video: string | null, system: string | null) =>
    `SELECT ${sqlString(id)} AS id, ${image === null ? 'NULL' : `{'bytes': from_base64(${b64(images[image])}), 'path': NULL}`}::STRUCT(bytes BLOB, path VARCHAR) AS image, ${turns(q, 'An answer.')} AS conversations, 'llava_wild' AS data_source, ${str(video ?? undefined)} AS video, ${str(system ?? undefined)} AS system_prompt, 'cc-by-4.0' AS license`;
  const rows = [
    row('ov0', 0, '<image>\nWhat is this?', null, SYSTEM_PROMPT),
    row('ov1', null, '<video>\nWhat happens?', 'clip_1.mp4', null),
    row('ov2', 1, '<image>\nAnd in the <video>?', null, null),
    row('ov3', 2, '<image>\nDescribe.', null, null),
  ];
  await duckdbQuery(`COPY (${rows.join(' UNION ALL ')}) TO ${sqlString(path)} (FORMAT parquet)`);
}

export const ONEVISION_EXPECTED: Expected = {
  kept: ['ov0', 'ov3'],
  dropped: { 'unsupported-modality': 2 },
};

/** How writers name the levels of a list column: the standard (DuckDB, Spark, pyarrow today), older pyarrow, legacy Spark. */
export const LIST_ENCODINGS = {
  'standard (list/element)': { repeated: 'list', element: 'element' },
  'pyarrow legacy (list/item)': { repeated: 'list', element: 'item' },
  'spark legacy (bag/array)': { repeated: 'bag', element: 'array' },
} as const;

const utf8 = (name: string): SchemaElement => ({
  name,
  type: 'BYTE_ARRAY',
  converted_type: 'UTF8',
  repetition_type: 'OPTIONAL',
});

/**
 * A ReCap/OneVision-shaped file whose `conversations` list uses the given level names (hyparquet-writer with an
 * explicit schema: the names are the only difference between these writers' files).
 */
export async function writeListEncodingParquet(
  path: string,
  names: { repeated: string; element: string },
  rows: { id: string; image: Uint8Array; conversations: { from: string; value: string }[] }[],
): Promise<void> {
  const schema: SchemaElement[] = [
    { name: 'schema', num_children: 3 },
    utf8('id'),
    { name: 'image', repetition_type: 'OPTIONAL', num_children: 2 },
    { name: 'bytes', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
    utf8('path'),
    { name: 'conversations', repetition_type: 'OPTIONAL', num_children: 1, converted_type: 'LIST' },
    { name: names.repeated, repetition_type: 'REPEATED', num_children: 1 },
    { name: names.element, repetition_type: 'OPTIONAL', num_children: 2 },
    utf8('from'),
    utf8('value'),
  ];
  const writer = new ByteWriter();
  parquetWrite({
    writer,
    schema,
    columnData: [
      { name: 'id', data: rows.map((r) => r.id) },
      { name: 'image', data: rows.map((r) => ({ bytes: r.image, path: null })) },
      { name: 'conversations', data: rows.map((r) => r.conversations) },
    ],
    codec: 'SNAPPY',
  });
  await writeFile(path, writer.getBytes());
}
