// Writes rows with a declared schema to parquet bytes (zstd by default) that DuckDB, pyarrow and HF datasets read:
// standard 3-level LISTs, STRING logical and UINT_64 converted types, no timestamps: same rows, same bytes.
import { gzipSync } from 'node:zlib';
import { ByteWriter, parquetWrite, type SchemaElement } from 'hyparquet-writer';
import { errorMessage, MixforgeError } from '../errors.ts';
import { chunksByteLength } from '../storage/types.ts';
import { typeName } from '../type-name.ts';
import { parquetCodecsReady, zstdCompressPage } from './compressors.ts';

export type ParquetPrimitive = 'string' | 'binary' | 'int32' | 'int64' | 'uint64' | 'boolean' | 'double';

/** A column or nested field. Values: string, Uint8Array, number (int32/double), bigint (int64/uint64), boolean. */
export type ParquetField = (
  | { name: string; type: ParquetPrimitive; nullable?: boolean }
  | { name: string; type: 'struct'; fields: ParquetField[]; nullable?: boolean }
  | { name: string; type: 'list'; element: ParquetField; nullable?: boolean }
) & {
  /**
   * Top-level columns only: the values are already compressed (JPEG/PNG/WebP bytes). Stored PLAIN, without page
   * compression or min/max statistics: zstd, dictionary sampling and byte-wise min/max cost CPU and gain nothing
   * on such bytes (measured: they were half of a build's write stage).
   */
  precompressed?: boolean;
};

export interface WriteParquetOptions {
  fields: ParquetField[];
  rows: readonly Record<string, unknown>[];
  /** Rows per row group (readers stream one group at a time, so this bounds their memory). Default 1000. */
  rowGroupSize?: number;
  /** Key-value metadata stored in the footer, in the given order. */
  metadata?: Record<string, string>;
  /** Page compression; zstd by default (snappy is hyparquet-writer's built-in, gzip is Node's zlib). */
  compression?: 'zstd' | 'snappy' | 'gzip' | 'none';
}

const CODECS = { zstd: 'ZSTD', snappy: 'SNAPPY', gzip: 'GZIP', none: 'UNCOMPRESSED' } as const;

/** `created_by` in the footer. Fixed (no version) so the bytes do not change when a dependency is patched. */
export const PARQUET_CREATED_BY = 'mixforge';

function primitiveElement(
  name: string,
  type: ParquetPrimitive,
  repetition: 'REQUIRED' | 'OPTIONAL',
): SchemaElement {
  const base = { name, repetition_type: repetition } as const;
  switch (type) {
    case 'string':
      return { ...base, type: 'BYTE_ARRAY', converted_type: 'UTF8', logical_type: { type: 'STRING' } };
    case 'binary':
      return { ...base, type: 'BYTE_ARRAY' };
    case 'int32':
      return { ...base, type: 'INT32' };
    case 'int64':
      return { ...base, type: 'INT64' };
    case 'uint64':
      // Converted type only: hyparquet-writer encodes the INTEGER logical type's bitWidth so that DuckDB's thrift
      // reader rejects the footer ("TProtocolException: Invalid data"); UINT_64 alone is read as uint64 everywhere.
      return { ...base, type: 'INT64', converted_type: 'UINT_64' };
    case 'boolean':
      return { ...base, type: 'BOOLEAN' };
    case 'double':
      return { ...base, type: 'DOUBLE' };
  }
}

/** Flatten fields into the depth-first SchemaElement list parquet stores. */
function schemaElements(field: ParquetField, name = field.name): SchemaElement[] {
  const repetition = field.nullable ? 'OPTIONAL' : 'REQUIRED';
  if (field.type === 'struct') {
    return [
      { name, repetition_type: repetition, num_children: field.fields.length },
      ...field.fields.flatMap((f) => schemaElements(f)),
    ];
  }
  if (field.type === 'list') {
    return [
      {
        name,
        repetition_type: repetition,
        num_children: 1,
        converted_type: 'LIST',
        logical_type: { type: 'LIST' },
      },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      ...schemaElements(field.element, 'element'),
    ];
  }
  return [primitiveElement(name, field.type, repetition)];
}

/** Check one value against its field; throws naming the path (e.g. `images[0].width`). */
function checkValue(field: ParquetField, value: unknown, path: string): void {
  if (value === null || value === undefined) {
    if (!field.nullable) throw new Error(`${path}: required, got ${value === null ? 'null' : 'nothing'}`);
    return;
  }
  const fail = (expected: string) => {
    throw new Error(`${path}: expected ${expected}, got ${typeName(value)}`);
  };
  switch (field.type) {
    case 'string':
      if (typeof value !== 'string') fail('string');
      return;
    case 'binary':
      if (!(value instanceof Uint8Array)) fail('bytes (Uint8Array)');
      return;
    case 'int32':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31)
        fail('int32');
      return;
    case 'int64':
      if (typeof value !== 'bigint' || value < -(2n ** 63n) || value >= 2n ** 63n) fail('int64 (bigint)');
      return;
    case 'uint64':
      if (typeof value !== 'bigint' || value < 0n || value >= 2n ** 64n) fail('uint64 (bigint)');
      return;
    case 'boolean':
      if (typeof value !== 'boolean') fail('boolean');
      return;
    case 'double':
      if (typeof value !== 'number') fail('number');
      return;
    case 'struct': {
      if (typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) fail('object');
      const obj = value as Record<string, unknown>;
      for (const f of field.fields) checkValue(f, obj[f.name], `${path}.${f.name}`);
      return;
    }
    case 'list': {
      if (!Array.isArray(value)) fail('array');
      (value as unknown[]).forEach((v, i) => {
        checkValue(field.element, v, `${path}[${i}]`);
      });
      return;
    }
  }
}

/** Bytes a chunk of small appends (headers, levels, footer) holds before the next chunk starts. */
const CHUNK_BYTES = 64 * 1024;
/** Appends at least this long (pages) are kept as they are, by reference, instead of being copied into a chunk. */
const KEEP_AT = 16 * 1024;

/**
 * The file as a list of chunks instead of one growing buffer. ByteWriter doubles its buffer and copies on every
 * overflow: a 12 MB shard went through buffers of 16, 8, 4… MB, each fresh zeroed memory, which cost more than
 * encoding the pages (docs/benchmarks.md). Pages are appended whole and never change afterwards, so they are kept by
 * reference. `offset` stays the file position, as hyparquet-writer's own file writer keeps it while resetting `index`.
 */
class ChunkListWriter extends ByteWriter {
  readonly chunks: Uint8Array[] = [];
  /** Where the bytes not yet in `chunks` start in `buffer`. */
  private start = 0;

  constructor() {
    super(CHUNK_BYTES);
  }

  override ensure(size: number): void {
    if (this.index + size <= this.buffer.byteLength) return;
    this.cut();
    this.buffer = new ArrayBuffer(Math.max(CHUNK_BYTES, size));
    this.view = new DataView(this.buffer);
    this.index = 0;
    this.start = 0;
  }

  override appendBytes(value: Uint8Array): void {
    if (value.byteLength < KEEP_AT) {
      super.appendBytes(value);
      return;
    }
    this.cut();
    this.chunks.push(value);
    this.offset += value.byteLength;
  }

  /** Every byte written, in order. */
  allChunks(): Uint8Array[] {
    this.cut();
    return this.chunks;
  }

  private cut(): void {
    if (this.index > this.start)
      this.chunks.push(new Uint8Array(this.buffer, this.start, this.index - this.start));
    this.start = this.index;
  }
}

/**
 * Write `rows` (objects keyed by top-level field name) as one parquet file in memory, as the chunks that make up
 * the file in order (large pages by reference: write them out or hash them without joining them first).
 * Rows are checked against the fields first: a mismatch throws a MixforgeError naming the row and the field path.
 */
export async function writeParquetChunks(options: WriteParquetOptions): Promise<Uint8Array[]> {
  await parquetCodecsReady();
  const { fields, rows } = options;
  rows.forEach((row, i) => {
    for (const f of fields) {
      try {
        checkValue(f, row[f.name], f.name);
      } catch (err) {
        throw new MixforgeError(`parquet write: row ${i}, ${errorMessage(err)}`);
      }
    }
  });
  const schema: SchemaElement[] = [
    { name: 'schema', num_children: fields.length },
    ...fields.flatMap((f) => schemaElements(f)),
  ];
  const writer = new ChunkListWriter();
  parquetWrite({
    writer,
    schema,
    columnData: fields.map((f) => ({
      name: f.name,
      data: rows.map((r) => r[f.name] ?? null),
      ...(f.precompressed
        ? { codec: 'UNCOMPRESSED' as const, encoding: 'PLAIN' as const, statistics: false }
        : {}),
    })),
    codec: CODECS[options.compression ?? 'zstd'],
    compressors: {
      ZSTD: zstdCompressPage,
      GZIP: (b: Uint8Array) => new Uint8Array(gzipSync(b, { level: 6 })),
    },
    rowGroupSize: Math.max(1, options.rowGroupSize ?? 1000),
    kvMetadata: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
    createdBy: PARQUET_CREATED_BY,
  });
  return writer.allChunks();
}

/** writeParquetChunks joined into one buffer of its own. */
export async function writeParquet(options: WriteParquetOptions): Promise<Uint8Array> {
  const chunks = await writeParquetChunks(options);
  const total = chunksByteLength(chunks);
  // Every byte is overwritten: no need for zeroed memory.
  const out = new Uint8Array(Buffer.allocUnsafeSlow(total).buffer, 0, total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
