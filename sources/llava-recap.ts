// LLaVA-ReCap CC3M / CC12M / 558K (`lmms-lab/LLaVA-ReCap-*`): parquet with id, image (embedded HF Image),
// conversations [{from: human, value: "<image>\n…"}, {from: gpt, value: dense caption}], data_source.
import { IMAGE_CONVERSATION_COLUMNS, imageConversationRow, parquetReader } from './parquet-family.ts';
import type { SourceReader } from './types.ts';

/**
 * The release a file belongs to, from a folder named like the HF repo (`LLaVA-ReCap-CC3M/…`, `recap-cc12m/…`):
 * `llava-recap/cc3m`, `llava-recap/cc12m`, `llava-recap/558k`; plain `llava-recap` when no folder says.
 */
export function recapSourceOf(uri: string): string {
  const m = /recap[-_]?(cc3m|cc12m|558k)(?:[/_-]|$)/i.exec(uri);
  return m ? `llava-recap/${m[1].toLowerCase()}` : 'llava-recap';
}

export const reader: SourceReader = parquetReader({
  format: 'llava-recap',
  columns: [...IMAGE_CONVERSATION_COLUMNS, { name: 'image', required: true }],
  sourceOf: recapSourceOf,
  toRecord: (row, ctx) => imageConversationRow(row, ctx, { imageRequired: true }),
});
