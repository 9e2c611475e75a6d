// Reading and writing the shards of a built mixture (Parquet, schema mixforge.sample/v1; layout in
// core/parquet/sample-schema.ts). Readers stream one row group at a time.
import { openParquet, readRowGroups } from '../core/parquet/read.ts';
import {
  SAMPLE_PARQUET_FIELDS,
  SAMPLE_PARQUET_METADATA,
  sampleToParquetRow,
} from '../core/parquet/sample-schema.ts';
import { type WriteParquetOptions, writeParquet, writeParquetChunks } from '../core/parquet/write.ts';
import type { Sample, SampleImage, Turn } from '../core/schema.ts';

/** Rows per row group in shards: bounds a streaming reader's memory to about this many samples. */
export const SHARD_ROW_GROUP = 256;

export interface SampleShardOptions {
  compression: 'zstd' | 'snappy' | 'gzip' | 'none';
  mixture: string;
}

function shardWriteOptions(rows: readonly Sample[], opts: SampleShardOptions): WriteParquetOptions {
  return {
    fields: SAMPLE_PARQUET_FIELDS,
    rows: rows.map(sampleToParquetRow),
    rowGroupSize: SHARD_ROW_GROUP,
    metadata: { ...SAMPLE_PARQUET_METADATA, 'mixforge.mixture': opts.mixture },
    compression: opts.compression,
  };
}

export async function writeSampleShard(
  rows: readonly Sample[],
  opts: SampleShardOptions,
): Promise<Uint8Array> {
  return writeParquet(shardWriteOptions(rows, opts));
}

/** The same shard as the chunks it is written as (its image pages by reference), for the build's write job. */
export async function sampleShardChunks(
  rows: readonly Sample[],
  opts: SampleShardOptions,
): Promise<Uint8Array[]> {
  return writeParquetChunks(shardWriteOptions(rows, opts));
}

export async function shardRowCount(uri: string): Promise<number> {
  return (await openParquet(uri)).numRows;
}

const text = (v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : String(v));

/** The content columns of a decoded shard row (what the loader reads): id, source, images, conversations. */
export function toSampleContent(
  r: Record<string, unknown>,
): Pick<Sample, 'id' | 'source' | 'images' | 'conversations'> {
  const images = (r.images as Record<string, unknown>[] | null) ?? [];
  const turns = (r.conversations as Record<string, unknown>[] | null) ?? [];
  return {
    id: text(r.id),
    source: text(r.source),
    images: images.map(
      (im): SampleImage => ({
        bytes: im.bytes as Uint8Array,
        width: Number(im.width),
        height: Number(im.height),
        format: text(im.format),
      }),
    ),
    conversations: turns.map((t): Turn => ({ from: text(t.from) as Turn['from'], value: text(t.value) })),
  };
}

/** A decoded shard row (all columns) as a Sample. */
export function toSample(r: Record<string, unknown>): Sample {
  const { id, source, images, conversations } = toSampleContent(r);
  return {
    id,
    source,
    origin: text(r.origin),
    key: BigInt.asUintN(64, BigInt(r.key as bigint)),
    images,
    conversations,
    // Shards written before the column existed (or a reader that left it out) have no metadata.
    ...(r.metadata === undefined || r.metadata === null ? {} : { metadata: text(r.metadata) }),
  };
}

/** Streams the samples of a shard, row group by row group; optionally only row groups [start, end). */
export async function* readShardSamples(
  uri: string,
  opts: { columns?: string[]; rowGroups?: { start: number; end: number } } = {},
): AsyncGenerator<Sample> {
  const handle = await openParquet(uri);
  // readRowGroups skips columns a shard lacks, so older shards without `metadata` still read.
  const columns = opts.columns ?? SAMPLE_PARQUET_FIELDS.map((f) => f.name);
  const range = opts.rowGroups ?? { start: 0, end: handle.rowGroups.length };
  for await (const { rows } of readRowGroups(handle, { ...range, columns }))
    for (const r of rows) yield toSample(r);
}
