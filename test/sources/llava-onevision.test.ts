import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { SourceFileError } from '../../core/errors.ts';
import { expandGlob } from '../../core/storage/index.ts';
import type { Partition, SourceReader } from '../../sources/types.ts';
import {
  DUCK_COMPRESSIONS,
  type ImageConversationRow,
  writeImageConversationParquet,
} from '../helpers/duckdb-fixtures.ts';
import { closeParquetReaderSuite, openParquetReaderSuite } from '../helpers/parquet-reader-suite.ts';
import { readAllPartitions, readGlob } from '../helpers/read-source.ts';
import type { TestS3 } from '../helpers/s3-server.ts';

let dir: string;
let s3: TestS3;
let reader: SourceReader;
let images: Uint8Array[];

const readPartitions = (partitions: Partition[]) => readAllPartitions(reader, partitions);
const readFiles = (pattern: string, targetRecords?: number) => readGlob(reader, pattern, targetRecords);

/** Every fourth row is text-only (null image), as in OneVision's mixed subsets. */
function oneVisionRows(n: number, subset: string): ImageConversationRow[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${subset}_${i}`,
    image: i % 4 === 3 ? null : { bytes: images[i % images.length], path: null },
    conversations: [
      {
        from: 'human',
        value: `${i % 4 === 3 ? '' : '<image>\n'}Subtract all red cubes. How many objects are left? (${i})`,
      },
      { from: 'gpt', value: `There are ${i % 7} objects left.` },
      { from: 'human', value: 'Explain your reasoning.' },
      { from: 'gpt', value: 'I counted the remaining shapes one by one.' },
    ],
    data_source: subset,
  }));
}

before(async () => {
  ({ dir, s3, reader, images } = await openParquetReaderSuite('llava-onevision', {
    bucket: 'ov',
    images: 5,
    imagePrefix: 'onevision',
  }));
});
after(() => closeParquetReaderSuite({ dir, s3 }));

describe('llava-onevision reader', () => {
  for (const compression of DUCK_COMPRESSIONS) {
    it(`reads ${compression} subsets: source from data_source, text-only rows without images`, async () => {
      const root = join(dir, compression);
      const subsets = ['CLEVR-Math(MathV360K)', 'ai2d(gpt4v)'];
      const rowsBySubset = new Map<string, ImageConversationRow[]>();
      for (const [k, subset] of subsets.entries()) {
        await mkdir(join(root, subset), { recursive: true });
        const rows = oneVisionRows(9 + k * 4, subset);
        rowsBySubset.set(subset, rows);
        await writeImageConversationParquet(join(root, subset, 'train-00000-of-00001.parquet'), rows, {
          compression,
          rowGroupSize: 4,
        });
      }
      const { records, quarantined } = await readFiles(join(root, '*', '*.parquet'));
      assert.equal(quarantined.length, 0);
      // expandGlob sorts by URI: `CLEVR…` before `ai2d…`.
      const expected = subsets.flatMap((subset) =>
        (rowsBySubset.get(subset) ?? []).map((row, i) => ({ subset, row, i })),
      );
      assert.equal(records.length, expected.length);
      records.forEach((rec, n) => {
        const { subset, row, i } = expected[n];
        const uri = join(root, subset, 'train-00000-of-00001.parquet');
        assert.equal(rec.id, row.id);
        assert.equal(rec.source, `llava-onevision/${subset}`);
        assert.equal(rec.origin, `${uri}#row=${i}`);
        assert.deepEqual(rec.conversations, row.conversations);
        assert.deepEqual(rec.meta, { data_source: subset });
        if (row.image === null) assert.deepEqual(rec.images, []);
        else assert.deepEqual(Buffer.from(rec.images[0].bytes), Buffer.from(row.image.bytes ?? []));
      });
      assert.equal(records.filter((r) => r.images.length === 0).length, 2 + 3);
    });
  }

  it('reads a text-only subset that has no image column at all', async () => {
    const folder = join(dir, 'magpie_pro(l3_80b_st)');
    await mkdir(folder, { recursive: true });
    const uri = join(folder, 'train-00000-of-00001.parquet');
    // No data_source either: the subset is the folder's name. Extra columns are kept as metadata.
    const rows = oneVisionRows(6, 'magpie').map((r) => ({ ...r, data_source: null }));
    await writeImageConversationParquet(uri, rows, { drop: ['image'], extra: true });
    const { records, quarantined } = await readFiles(uri);
    assert.equal(quarantined.length, 0);
    assert.deepEqual(
      records.map((r) => [r.id, r.images.length, r.source, r.meta]),
      rows.map((r, i) => [
        r.id,
        0,
        'llava-onevision/magpie_pro(l3_80b_st)',
        { width_hint: i * 7, license: 'cc-by' },
      ]),
    );
  });

  it('quarantines bad rows (null id, image without bytes, malformed conversations) and keeps reading', async () => {
    const folder = join(dir, 'bad', 'chartqa(cauldron,llava_format)');
    await mkdir(folder, { recursive: true });
    const uri = join(folder, 'train-00000-of-00001.parquet');
    const rows = oneVisionRows(12, 'chartqa');
    rows[1] = { ...rows[1], id: null };
    rows[4] = { ...rows[4], image: { bytes: null, path: 'chart_4.png' } };
    rows[8] = { ...rows[8], conversations: [{ from: 'human', value: null }] };
    await writeImageConversationParquet(uri, rows, { compression: 'zstd', rowGroupSize: 5 });
    const { records, quarantined } = await readFiles(uri);
    assert.equal(records.length + quarantined.length, 12);
    assert.deepEqual(
      quarantined.map((q) => [q.origin, q.reason, q.id, q.source]),
      [
        // data_source (`chartqa`) names the subset, for quarantined rows too.
        [`${uri}#row=1`, 'missing-id', undefined, 'llava-onevision/chartqa'],
        [`${uri}#row=4`, 'missing-image', rows[4].id, 'llava-onevision/chartqa'],
        [`${uri}#row=8`, 'missing-field', rows[8].id, 'llava-onevision/chartqa'],
      ],
    );
    assert.match(quarantined[2].message, /conversations\[0\]\.value/);
    assert.deepEqual(
      records.map((r) => r.id),
      rows.filter((_, i) => ![1, 4, 8].includes(i)).map((r) => r.id),
    );
  });

  it('fails naming the file and column when a required column is missing', async () => {
    const uri = join(dir, 'noid', 'x.parquet');
    await mkdir(join(dir, 'noid'), { recursive: true });
    await writeImageConversationParquet(uri, oneVisionRows(3, 'x'), { drop: ['id'] });
    await assert.rejects(
      reader.plan(await expandGlob(uri), {}),
      (e: unknown) =>
        e instanceof SourceFileError && e.uri === uri && /missing required column 'id'/.test(e.message),
    );
  });

  it('partitions over S3 cover every row once for any partition size', async () => {
    const local = join(dir, 's3-local.parquet');
    const rows = oneVisionRows(19, 'geo170k');
    rows[6] = { ...rows[6], conversations: null };
    await writeImageConversationParquet(local, rows, { compression: 'snappy', rowGroupSize: 3 });
    await s3.client.send(
      new PutObjectCommand({
        Bucket: 'ov',
        Key: 'LLaVA-OneVision-Data/geo170k(qa)/train-00000-of-00001.parquet',
        Body: await readFile(local),
      }),
    );
    const files = await expandGlob('s3://ov/LLaVA-OneVision-Data/*/*.parquet');
    const uri = 's3://ov/LLaVA-OneVision-Data/geo170k(qa)/train-00000-of-00001.parquet';
    const full = await readFiles('s3://ov/LLaVA-OneVision-Data/*/*.parquet');
    assert.equal(full.records.length, 18);
    assert.deepEqual(
      full.quarantined.map((q) => q.origin),
      [`${uri}#row=6`],
    );
    assert.equal(full.records[0].source, 'llava-onevision/geo170k');
    for (const target of [1, 3, 4, 10]) {
      const plan = await reader.plan(files, { targetRecords: target });
      const parts = await readPartitions(plan);
      assert.deepEqual(
        parts.records.map((r) => r.origin),
        full.records.map((r) => r.origin),
      );
      assert.deepEqual(
        parts.quarantined.map((q) => q.origin),
        [`${uri}#row=6`],
      );
    }
  });
});
