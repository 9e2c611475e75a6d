// DocMatix (`HuggingFaceM4/Docmatix`, `data/train-….parquet`): per document a list of page images and a list of
// {user, assistant, source} QA pairs. Each pair becomes a human/gpt turn; `<image>` tokens are added by normalise.
import type { RawTurn } from '../core/schema.ts';
import { typeName } from '../core/type-name.ts';
import { isPlainObject, reject } from './field-checks.ts';
import {
  checkImage,
  derivedRowId,
  parquetReader,
  type RowContext,
  type RowImage,
  type RowResult,
} from './parquet-family.ts';
import type { SourceReader } from './types.ts';

function docmatixRow(row: Record<string, unknown>, ctx: RowContext): RowResult {
  // DocMatix has no id column: a document is named by its file and row, as `ids: derive` names any row.
  const id = derivedRowId(ctx);
  const imagesValue = row.images;
  if (imagesValue === null || imagesValue === undefined)
    return reject('missing-field', "field 'images' is missing", id);
  if (!Array.isArray(imagesValue)) {
    return reject('wrong-type', `field 'images' must be a list of images, got ${typeName(imagesValue)}`, id);
  }
  if (imagesValue.length === 0) {
    return reject(
      'missing-image',
      "field 'images' is empty: a DocMatix document has at least one page image",
      id,
    );
  }
  const images: RowImage[] = [];
  for (let k = 0; k < imagesValue.length; k++) {
    const image = checkImage(imagesValue[k], `images[${k}]`, id);
    if (!image.ok) return image;
    if (image.value === undefined) return reject('missing-image', `field 'images[${k}]' is null`, id);
    images.push(image.value);
  }

  const texts = row.texts;
  if (texts === null || texts === undefined) return reject('missing-field', "field 'texts' is missing", id);
  if (!Array.isArray(texts))
    return reject('wrong-type', `field 'texts' must be a list, got ${typeName(texts)}`, id);
  const conversations: RawTurn[] = [];
  const textSources: (string | null)[] = [];
  for (let t = 0; t < texts.length; t++) {
    const pair: unknown = texts[t];
    if (!isPlainObject(pair)) {
      return reject(
        pair === null ? 'missing-field' : 'wrong-type',
        `field 'texts[${t}]' must be a {user, assistant, source} struct, got ${typeName(pair)}`,
        id,
      );
    }
    const { user, assistant, source } = pair as { user?: unknown; assistant?: unknown; source?: unknown };
    for (const [name, v] of [
      ['user', user],
      ['assistant', assistant],
    ] as const) {
      if (v === null || v === undefined)
        return reject('missing-field', `field 'texts[${t}].${name}' is missing`, id);
      if (typeof v !== 'string') {
        return reject('wrong-type', `field 'texts[${t}].${name}' must be a string, got ${typeName(v)}`, id);
      }
    }
    if (source !== null && source !== undefined && typeof source !== 'string') {
      return reject('wrong-type', `field 'texts[${t}].source' must be a string, got ${typeName(source)}`, id);
    }
    conversations.push({ from: 'human', value: user as string }, { from: 'gpt', value: assistant as string });
    textSources.push(typeof source === 'string' ? source : null);
  }
  return { ok: true, id, images, conversations, meta: { text_sources: textSources } };
}

export const reader: SourceReader = parquetReader({
  format: 'docmatix',
  columns: [
    { name: 'images', required: true },
    { name: 'texts', required: true },
  ],
  sourceOf: () => 'docmatix',
  toRecord: docmatixRow,
});
