// The parquet layout of a built mixture's shards (`mixforge.sample/v1`, DESIGN.md) and the row mapping of a Sample.
import type { Sample } from '../schema.ts';
import { SAMPLE_SCHEMA_VERSION } from '../schema.ts';
import type { ParquetField } from './write.ts';

/** `conversations`: list<struct<from, value>>, as LLaVA's JSON and our shards spell it. */
export const CONVERSATIONS_FIELD: ParquetField = {
  name: 'conversations',
  type: 'list',
  element: {
    name: 'element',
    type: 'struct',
    fields: [
      { name: 'from', type: 'string' },
      { name: 'value', type: 'string' },
    ],
  },
};

export const SAMPLE_PARQUET_FIELDS: ParquetField[] = [
  { name: 'id', type: 'string' },
  { name: 'source', type: 'string' },
  {
    name: 'images',
    type: 'list',
    precompressed: true,
    element: {
      name: 'element',
      type: 'struct',
      fields: [
        { name: 'bytes', type: 'binary' },
        { name: 'width', type: 'int32' },
        { name: 'height', type: 'int32' },
        { name: 'format', type: 'string' },
      ],
    },
  },
  CONVERSATIONS_FIELD,
  { name: 'origin', type: 'string' },
  { name: 'key', type: 'uint64' },
  // The record's extra source fields as canonical JSON text (DuckDB: `json_extract(metadata, '$.data_source')`).
  { name: 'metadata', type: 'string' },
];

/** Footer key-value metadata naming the schema version, so readers can refuse shards they do not understand. */
export const SAMPLE_PARQUET_METADATA = { 'mixforge.schema': SAMPLE_SCHEMA_VERSION };

export function sampleToParquetRow(s: Sample): Record<string, unknown> {
  return {
    id: s.id,
    source: s.source,
    images: s.images.map((im) => ({
      bytes: im.bytes,
      width: im.width,
      height: im.height,
      format: im.format,
    })),
    conversations: s.conversations.map((t) => ({ from: t.from, value: t.value })),
    origin: s.origin,
    key: s.key,
    metadata: s.metadata ?? '{}',
  };
}
