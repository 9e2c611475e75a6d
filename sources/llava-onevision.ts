// LLaVA-OneVision (`lmms-lab/LLaVA-OneVision-Data`): one folder per subset (`CLEVR-Math(MathV360K)/train-….parquet`)
// with id, image (HF Image, null for text-only rows), conversations, data_source.
import { imageConversationRow, parentFolder, parquetReader } from './parquet-family.ts';
import type { SourceReader } from './types.ts';

export const reader: SourceReader = parquetReader({
  format: 'llava-onevision',
  columns: [
    { name: 'id', required: true },
    // A subset of text-only conversations may come without an image column at all.
    { name: 'image', required: false },
    { name: 'conversations', required: true },
    { name: 'data_source', required: false },
  ],
  // The subset is the folder the file sits in (the HF config name).
  sourceOf: (uri) => `llava-onevision/${parentFolder(uri)}`,
  toRecord: (row) => imageConversationRow(row, { imageRequired: false }),
});
