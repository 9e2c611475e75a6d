// OpenAI-style messages files (LLaMA-Factory's `mllm_demo`, many fine-tuning repos): `{messages: [{role, content}],
// images: [...]}` records in a .json array, a .jsonl file or a .parquet file; the file's extension picks the reader.
import { SourceFileError } from '../core/errors.ts';
import type { ObjectInfo } from '../core/storage/index.ts';
import { typeName } from '../core/type-name.ts';
import { checkMessages, otherModalityToken, withSystemPrompt } from './conversation-shapes.ts';
import { reject } from './field-checks.ts';
import { firstSegment, llavaJsonReader } from './json-family.ts';
import {
  checkImage,
  fileStem,
  parquetReader,
  type RowContext,
  type RowImage,
  type RowResult,
  rowId,
} from './parquet-family.ts';
import type { Partition, PlanOptions, ReadItem, ReadOptions, SourceReader } from './types.ts';

/** JSON records: `images` paths resolve against the image root (by default the file's folder). */
function jsonReader(layout: 'json-array' | 'jsonl'): SourceReader {
  return llavaJsonReader({
    format: 'messages',
    family: 'messages',
    layout,
    requireImage: false,
    sourceOf: (r) => `messages/${r.imagePaths.length > 0 ? firstSegment(r.imagePaths[0]) : 'text-only'}`,
  });
}

/** A parquet row: `messages` list<struct<role, content>>, `images` list of HF Image structs or of paths. */
function messagesRow(row: Record<string, unknown>, ctx: RowContext): RowResult {
  const id = rowId(row.id, ctx);
  if (!id.ok) return id;
  const images: RowImage[] = [];
  const value = row.images;
  if (value !== null && value !== undefined) {
    if (!Array.isArray(value))
      return reject(
        'wrong-type',
        `field 'images' must be a list of images, got ${typeName(value)}`,
        id.value,
      );
    for (let k = 0; k < value.length; k++) {
      // A list of paths (LLaMA-Factory) or of HF Image structs (`datasets`).
      if (typeof value[k] === 'string' && value[k] !== '') {
        images.push({ path: value[k], field: `images[${k}]` });
        continue;
      }
      const image = checkImage(value[k], `images[${k}]`, id.value);
      if (!image.ok) return image;
      if (image.value === undefined) return reject('missing-image', `field 'images[${k}]' is null`, id.value);
      images.push(image.value);
    }
  }
  const messages = checkMessages(row.messages, id.value);
  if (!messages.ok) return messages;
  const turns = withSystemPrompt(messages.value, row, id.value);
  if (!turns.ok) return turns;
  const token = otherModalityToken(turns.value, id.value);
  if (!token.ok) return token;
  return { ok: true, id: id.value, images, conversations: turns.value, meta: {} };
}

const parquet = parquetReader({
  format: 'messages',
  columns: [
    // Not required: rows without an id are quarantined with the hint to set `ids: derive`.
    { name: 'id', required: false },
    { name: 'messages', required: true },
    { name: 'images', required: false },
    { name: 'system', required: false },
  ],
  sourceOf: (uri) => `messages/${fileStem(uri)}`,
  toRecord: messagesRow,
});
const jsonArray = jsonReader('json-array');
const jsonl = jsonReader('jsonl');

/** The reader for a file (planning) or a partition (reading), by extension. */
function readerFor(uri: string): SourceReader {
  if (/\.parquet$/i.test(uri)) return parquet;
  if (/\.jsonl$/i.test(uri)) return jsonl;
  if (/\.json$/i.test(uri)) return jsonArray;
  throw new SourceFileError(uri, 'a messages file must end in .json, .jsonl or .parquet');
}

export const reader: SourceReader = {
  format: 'messages',
  async plan(files: ObjectInfo[], options: PlanOptions): Promise<Partition[]> {
    const out: Partition[] = [];
    // One file at a time, in the given order, so partitions keep the files' order.
    for (const file of files) out.push(...(await readerFor(file.uri).plan([file], options)));
    return out;
  },
  read(partition: Partition, options?: ReadOptions): AsyncIterable<ReadItem> {
    return readerFor(partition.uri).read(partition, options);
  },
};
