// LLaVA-OneVision (`lmms-lab/LLaVA-OneVision-Data`): one folder per subset (`CLEVR-Math(MathV360K)/train-….parquet`)
// with id, image (HF Image, null for text-only rows), conversations, data_source.
import {
  IMAGE_CONVERSATION_COLUMNS,
  imageConversationRow,
  parentFolder,
  parquetReader,
} from './parquet-family.ts';
import type { SourceReader } from './types.ts';

export const reader: SourceReader = parquetReader({
  format: 'llava-onevision',
  columns: [
    ...IMAGE_CONVERSATION_COLUMNS,
    // A subset of text-only conversations may come without an image column at all.
    { name: 'image', required: false },
  ],
  // The subset is the row's data_source when the column has one, else the folder the file sits in (the HF config).
  sourceOf(uri, row) {
    const dataSource = typeof row?.data_source === 'string' ? row.data_source.trim() : '';
    return `llava-onevision/${dataSource !== '' ? dataSource : parentFolder(uri)}`;
  },
  toRecord: (row, ctx) => imageConversationRow(row, ctx, { imageRequired: false }),
});
