import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openParquet, readRowGroups } from '../../core/parquet/read.ts';
import {
  SAMPLE_PARQUET_FIELDS,
  SAMPLE_PARQUET_METADATA,
  sampleToParquetRow,
} from '../../core/parquet/sample-schema.ts';
import { writeParquet } from '../../core/parquet/write.ts';
import type { Sample } from '../../core/schema.ts';
import { drawDemoImage } from '../../demo/images.ts';
import { duckdbQuery, sqlString } from '../helpers/duckdb-fixtures.ts';

let dir: string;
let samples: Sample[];

const md5 = (b: Uint8Array | string) => createHash('md5').update(b).digest('hex');

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-pqwrite-'));
  const formats = ['jpeg', 'png', 'webp'] as const;
  const imgs = await Promise.all(
    formats.map((f, i) => drawDemoImage(`pqwrite-${i}`, f, { width: 30 + i, height: 20 + i })),
  );
  samples = Array.from({ length: 250 }, (_, i) => ({
    id: `recap-cc3m/${i}`,
    source: i % 3 ? 'llava-recap/cc3m' : 'docmatix',
    images:
      i % 10 === 0
        ? []
        : Array.from({ length: 1 + (i % 3) }, (_, k) => ({
            bytes: imgs[(i + k) % 3],
            width: 30 + ((i + k) % 3),
            height: 20 + ((i + k) % 3),
            format: formats[(i + k) % 3],
          })),
    conversations: [
      {
        from: 'human',
        value: `${'<image>\n'.repeat(i % 10 === 0 ? 0 : 1 + (i % 3))}Describe picture ${i} — ünïcødé 🖼`,
      },
      { from: 'gpt', value: `It shows thing ${i}.` },
    ],
    origin: `/data/train.parquet#row=${i}`,
    // Older samples have no metadata: written as `{}`.
    ...(i % 4 === 0 ? {} : { metadata: `{"data_source":"set-${i % 4}","row":${i}}` }),
    // Spread over the whole uint64 range, including values ≥ 2^63 (a signed reader would see them negative).
    key: (BigInt(i) * 0x9e3779b97f4a7c15n) % 2n ** 64n,
  }));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('core/parquet write', () => {
  it('writes the sample schema (list<struct<binary…>>, uint64) that DuckDB reads back exactly', async () => {
    const bytes = await writeParquet({
      fields: SAMPLE_PARQUET_FIELDS,
      rows: samples.map(sampleToParquetRow),
      rowGroupSize: 100,
      metadata: SAMPLE_PARQUET_METADATA,
    });
    const path = join(dir, 'shard.parquet');
    await writeFile(path, bytes);
    const f = sqlString(path);

    const meta = await duckdbQuery(
      `SELECT DISTINCT row_group_id, row_group_num_rows, path_in_schema LIKE 'images%' AS image, compression
       FROM parquet_metadata(${f}) ORDER BY 1, 3`,
    );
    // Image bytes are already compressed: stored as they are; every other column is zstd.
    assert.deepEqual(
      meta.map((r) => [Number(r[0]), Number(r[1]), r[2], r[3]]),
      [
        [0, 100, false, 'ZSTD'],
        [0, 100, true, 'UNCOMPRESSED'],
        [1, 100, false, 'ZSTD'],
        [1, 100, true, 'UNCOMPRESSED'],
        [2, 50, false, 'ZSTD'],
        [2, 50, true, 'UNCOMPRESSED'],
      ],
    );
    const kv = await duckdbQuery(`SELECT decode(key), decode(value) FROM parquet_kv_metadata(${f})`);
    assert.deepEqual(kv, [['mixforge.schema', 'mixforge.sample/v1']]);

    const schema = await duckdbQuery(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${f})`);
    assert.deepEqual(schema, [
      ['id', 'VARCHAR'],
      ['source', 'VARCHAR'],
      ['images', 'STRUCT(bytes BLOB, width INTEGER, height INTEGER, format VARCHAR)[]'],
      ['conversations', 'STRUCT("from" VARCHAR, "value" VARCHAR)[]'],
      ['origin', 'VARCHAR'],
      ['key', 'UBIGINT'],
      ['metadata', 'VARCHAR'],
    ]);
    const metadata = await duckdbQuery(`SELECT json_extract_string(metadata, '$.data_source') FROM ${f}`);
    assert.deepEqual(
      metadata.map((r) => r[0]),
      samples.map((_, i) => (i % 4 === 0 ? null : `set-${i % 4}`)),
    );

    const rows = await duckdbQuery(
      `SELECT id, source, [md5(im.bytes) || ':' || im.width || 'x' || im.height || ':' || im.format FOR im IN images],
              [t."from" || '|' || t."value" FOR t IN conversations], origin, key::VARCHAR FROM ${f}`,
    );
    assert.equal(rows.length, samples.length);
    rows.forEach((r, i) => {
      const s = samples[i];
      assert.equal(r[0], s.id);
      assert.equal(r[1], s.source);
      assert.deepEqual(
        (r[2] as { items: unknown[] }).items,
        s.images.map((im) => `${md5(im.bytes)}:${im.width}x${im.height}:${im.format}`),
      );
      assert.deepEqual(
        (r[3] as { items: unknown[] }).items,
        s.conversations.map((t) => `${t.from}|${t.value}`),
      );
      assert.equal(r[4], s.origin);
      assert.equal(r[5], s.key.toString());
    });

    // Statistics must order keys as unsigned, or DuckDB's row-group pruning would drop matches.
    const big = samples.filter((s) => s.key >= 2n ** 63n).length;
    assert.ok(big > 50);
    const [[count]] = await duckdbQuery(
      `SELECT count(*) FROM ${f} WHERE key >= 9223372036854775808::UBIGINT`,
    );
    assert.equal(Number(count), big);
  });

  it('gives byte-identical output for identical rows, and our reader reads it back', async () => {
    const rows = samples.map(sampleToParquetRow);
    const a = await writeParquet({
      fields: SAMPLE_PARQUET_FIELDS,
      rows,
      rowGroupSize: 64,
      metadata: SAMPLE_PARQUET_METADATA,
    });
    const b = await writeParquet({
      fields: SAMPLE_PARQUET_FIELDS,
      rows: samples.map(sampleToParquetRow),
      rowGroupSize: 64,
      metadata: SAMPLE_PARQUET_METADATA,
    });
    assert.equal(md5(a), md5(b));
    const changed = rows.map((r, i) => (i === 7 ? { ...r, origin: 'elsewhere' } : r));
    const c = await writeParquet({
      fields: SAMPLE_PARQUET_FIELDS,
      rows: changed,
      rowGroupSize: 64,
      metadata: SAMPLE_PARQUET_METADATA,
    });
    assert.notEqual(md5(a), md5(c));

    const path = join(dir, 'roundtrip.parquet');
    await writeFile(path, a);
    const handle = await openParquet(path);
    assert.equal(handle.rowGroups.length, 4);
    const back: Record<string, unknown>[] = [];
    for await (const g of readRowGroups(handle, { start: 0, end: 4, columns: handle.columns }))
      back.push(...g.rows);
    assert.equal(back.length, samples.length);
    back.forEach((r, i) => {
      const s = samples[i];
      assert.equal(r.id, s.id);
      assert.equal(r.key, s.key);
      assert.deepEqual(r.conversations, s.conversations);
      const imgs = r.images as { bytes: Uint8Array; width: number; height: number; format: string }[];
      assert.deepEqual(
        imgs.map((im) => [md5(im.bytes), im.width, im.height, im.format]),
        s.images.map((im) => [md5(im.bytes), im.width, im.height, im.format]),
      );
    });
  });

  it('rejects a row that does not fit the schema, naming row and field path', async () => {
    const rows = samples.slice(0, 5).map(sampleToParquetRow);
    const bad = rows.map((r, i) =>
      i === 3 ? { ...r, images: [{ bytes: new Uint8Array(3), width: '30', height: 20, format: 'png' }] } : r,
    );
    await assert.rejects(
      writeParquet({ fields: SAMPLE_PARQUET_FIELDS, rows: bad }),
      /row 3, images\[0\]\.width: expected int32, got string/,
    );
    await assert.rejects(
      writeParquet({
        fields: SAMPLE_PARQUET_FIELDS,
        rows: rows.map((r, i) => (i === 1 ? { ...r, key: -1n } : r)),
      }),
      /row 1, key: expected uint64/,
    );
    await assert.rejects(
      writeParquet({
        fields: SAMPLE_PARQUET_FIELDS,
        rows: rows.map((r, i) => (i === 2 ? { ...r, id: null } : r)),
      }),
      /row 2, id: required, got null/,
    );
  });

  it('writes nullable fields as OPTIONAL and nulls as nulls', async () => {
    const bytes = await writeParquet({
      fields: [
        { name: 'id', type: 'string' },
        { name: 'note', type: 'string', nullable: true },
        { name: 'tags', type: 'list', nullable: true, element: { name: 'element', type: 'string' } },
      ],
      rows: [
        { id: 'a', note: null, tags: ['x', 'y'] },
        { id: 'b', note: 'hi', tags: null },
        { id: 'c', note: 'yo', tags: [] },
      ],
    });
    const path = join(dir, 'nullable.parquet');
    await writeFile(path, bytes);
    const rows = await duckdbQuery(`SELECT id, note, tags FROM ${sqlString(path)}`);
    assert.deepEqual(
      rows.map((r) => [r[0], r[1], r[2] === null ? null : (r[2] as { items: unknown[] }).items]),
      [
        ['a', null, ['x', 'y']],
        ['b', 'hi', null],
        ['c', 'yo', []],
      ],
    );
  });
});
