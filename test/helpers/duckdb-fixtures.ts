// Parquet fixtures written by an independent writer (DuckDB), in the real shapes of the HF datasets we read:
// LLaVA-ReCap / LLaVA-OneVision (id, image struct, conversations list<struct>, data_source) and DocMatix.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { type DemoImageFormat, drawDemoImage } from '../../demo/images.ts';

export type DuckCompression = 'snappy' | 'zstd' | 'gzip' | 'uncompressed';

export const DUCK_COMPRESSIONS: readonly DuckCompression[] = ['snappy', 'zstd', 'gzip', 'uncompressed'];

export interface DuckWriteOptions {
  compression?: DuckCompression;
  /**
   * Rows per row group. DuckDB only cuts row groups at chunk boundaries, so each group is written as its own
   * UNION ALL branch under `threads=1`; the layout is checked after writing.
   */
  rowGroupSize?: number;
  /** V2 switches strings to DELTA_LENGTH_BYTE_ARRAY / RLE_DICTIONARY pages. */
  parquetVersion?: 'V1' | 'V2';
  /** Disable dictionary encoding (every string column PLAIN). */
  plain?: boolean;
}

/** A Hugging Face `Image` value: `struct<bytes: binary, path: string>`. */
export interface FixtureImage {
  bytes: Uint8Array | null;
  path: string | null;
}

export interface FixtureTurn {
  from: string | null;
  value: string | null;
}

/** A row of LLaVA-ReCap / LLaVA-OneVision parquet. */
export interface ImageConversationRow {
  id: string | null;
  image: FixtureImage | null;
  conversations: FixtureTurn[] | null;
  data_source: string | null;
}

export interface DocmatixText {
  user: string | null;
  assistant: string | null;
  source: string | null;
}

/** A row of DocMatix parquet. */
export interface DocmatixRow {
  images: (FixtureImage | null)[] | null;
  texts: DocmatixText[] | null;
}

export interface ColumnLayout {
  /** Leave these columns out of the file (to test missing required/optional columns). */
  drop?: string[];
  /** Add columns a reader must ignore. */
  extra?: boolean;
  /** Replace a column's SQL expression (over the JSON columns), e.g. to give it the wrong type. */
  override?: Record<string, string>;
}

const b64 = (b: Uint8Array | null): string | null => (b === null ? null : Buffer.from(b).toString('base64'));

const sqlString = (s: string): string => `'${s.replaceAll("'", "''")}'`;

/**
 * Write `rows` (JSON-able, bytes already base64) with DuckDB: the rows go through a temp JSONL file read with an
 * explicit column list, `select` turns them into the target columns, COPY writes the parquet file.
 */
async function duckdbCopy(
  path: string,
  rows: object[],
  jsonColumns: Record<string, string>,
  select: string,
  options: DuckWriteOptions,
): Promise<void> {
  const tmp = await mkdtemp(join(tmpdir(), 'mixforge-duck-'));
  const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
  const conn = await instance.connect();
  try {
    const groupSize = Math.max(1, options.rowGroupSize ?? rows.length);
    const jsonl = join(tmp, 'rows.jsonl');
    await writeFile(
      jsonl,
      rows.map((r, i) => JSON.stringify({ ...r, _row: i, _group: Math.floor(i / groupSize) })).join('\n'),
    );
    const cols = Object.entries({ ...jsonColumns, _row: 'BIGINT', _group: 'BIGINT' })
      .map(([k, v]) => `${sqlString(k)}: ${sqlString(v)}`)
      .join(', ');
    await conn.run(
      `CREATE TABLE src AS SELECT * FROM read_json(${sqlString(jsonl)}, format = 'newline_delimited', columns = {${cols}}, maximum_object_size = 268435456)`,
    );
    const groups = Math.ceil(rows.length / groupSize);
    const branches = Array.from(
      { length: Math.max(1, groups) },
      (_, g) => `(SELECT ${select} FROM src WHERE _group = ${g} ORDER BY _row)`,
    ).join(' UNION ALL ');
    const opts = [
      'FORMAT parquet',
      `COMPRESSION ${options.compression ?? 'snappy'}`,
      `ROW_GROUP_SIZE ${groupSize}`,
      ...(options.parquetVersion ? [`PARQUET_VERSION ${options.parquetVersion}`] : []),
      ...(options.plain ? ['DICTIONARY_SIZE_LIMIT 1'] : []),
    ];
    await conn.run(`COPY (${branches}) TO ${sqlString(path)} (${opts.join(', ')})`);
    const layout = await conn.runAndReadAll(
      `SELECT DISTINCT row_group_id, row_group_num_rows FROM parquet_metadata(${sqlString(path)}) ORDER BY row_group_id`,
    );
    const sizes = layout.getRows().map((r) => Number(r[1]));
    const expected = Array.from({ length: groups }, (_, g) =>
      Math.min(groupSize, rows.length - g * groupSize),
    );
    if (rows.length > 0 && sizes.join(',') !== expected.join(',')) {
      throw new Error(`DuckDB wrote row groups [${sizes}] instead of [${expected}] for ${path}`);
    }
  } finally {
    conn.closeSync();
    instance.closeSync();
    await rm(tmp, { recursive: true, force: true });
  }
}

function project(columns: [name: string, expr: string][], layout: ColumnLayout): string {
  const kept = columns
    .filter(([name]) => !layout.drop?.includes(name))
    .map(([name, expr]) => `${layout.override?.[name] ?? expr} AS "${name}"`);
  // Columns real releases sometimes add (sizes, licences), placed first so readers cannot rely on positions.
  const extra = layout.extra ? ['_row * 7 AS width_hint', "'cc-by' AS license"] : [];
  return [...extra, ...kept].join(', ');
}

const IMAGE_STRUCT_JSON = 'STRUCT(b64 VARCHAR, path VARCHAR)';
const IMAGE_FROM_JSON = (col: string) =>
  `CASE WHEN ${col} IS NULL THEN NULL ELSE {'bytes': from_base64(${col}.b64), 'path': ${col}.path} END`;

/** LLaVA-ReCap / LLaVA-OneVision layout: id, image, conversations, data_source. */
export async function writeImageConversationParquet(
  path: string,
  rows: ImageConversationRow[],
  options: DuckWriteOptions & ColumnLayout = {},
): Promise<void> {
  const json = rows.map((r) => ({
    id: r.id,
    image: r.image === null ? null : { b64: b64(r.image.bytes), path: r.image.path },
    conversations: r.conversations,
    data_source: r.data_source,
  }));
  const select = project(
    [
      ['id', 'id'],
      ['image', IMAGE_FROM_JSON('image')],
      ['conversations', 'conversations'],
      ['data_source', 'data_source'],
    ],
    options,
  );
  await duckdbCopy(
    path,
    json,
    {
      id: 'VARCHAR',
      image: IMAGE_STRUCT_JSON,
      conversations: 'STRUCT("from" VARCHAR, "value" VARCHAR)[]',
      data_source: 'VARCHAR',
    },
    select,
    options,
  );
}

/** DocMatix layout: images list<Image>, texts list<{user, assistant, source}>. */
export async function writeDocmatixParquet(
  path: string,
  rows: DocmatixRow[],
  options: DuckWriteOptions & ColumnLayout = {},
): Promise<void> {
  const json = rows.map((r) => ({
    images:
      r.images === null
        ? null
        : r.images.map((im) => (im === null ? null : { b64: b64(im.bytes), path: im.path })),
    texts: r.texts,
  }));
  const select = project(
    [
      ['images', `list_transform(images, x -> ${IMAGE_FROM_JSON('x')})`],
      ['texts', 'texts'],
    ],
    options,
  );
  await duckdbCopy(
    path,
    json,
    {
      images: `${IMAGE_STRUCT_JSON}[]`,
      texts: 'STRUCT("user" VARCHAR, assistant VARCHAR, source VARCHAR)[]',
    },
    select,
    options,
  );
}

/** Run one query against a parquet file with DuckDB and return its rows (to check what our writer wrote). */
export async function duckdbQuery(sql: string): Promise<unknown[][]> {
  const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
  const conn = await instance.connect();
  try {
    return (await conn.runAndReadAll(sql)).getRows();
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

export { sqlString };

/** Small real images (JPEG, PNG, WebP in turn) for fixtures, drawn by demo/images.ts. */
export async function fixtureImages(n: number, prefix: string): Promise<Uint8Array[]> {
  const formats: DemoImageFormat[] = ['jpeg', 'png', 'webp'];
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      drawDemoImage(`${prefix}-${i}`, formats[i % 3], { width: 24 + (i % 5) * 4, height: 16 + (i % 3) * 4 }),
    ),
  );
}
