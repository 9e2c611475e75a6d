// The columns of a LLaVA-ReCap parquet file as the Hugging Face release has them, for writing synthetic inputs
// (bench/build.ts, dev/scale-inputs.ts).
import { CONVERSATIONS_FIELD } from '../core/parquet/sample-schema.ts';
import type { ParquetField } from '../core/parquet/write.ts';

export const RECAP_FIELDS: ParquetField[] = [
  { name: 'id', type: 'string' },
  {
    name: 'image',
    type: 'struct',
    fields: [
      { name: 'bytes', type: 'binary' },
      { name: 'path', type: 'string' },
    ],
  },
  CONVERSATIONS_FIELD,
  { name: 'data_source', type: 'string' },
];
