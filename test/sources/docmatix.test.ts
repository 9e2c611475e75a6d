import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { SourceFileError } from '../../core/errors.ts';
import type { RawRecord } from '../../core/schema.ts';
import { expandGlob } from '../../core/storage/index.ts';
import type { Partition, SourceReader } from '../../sources/types.ts';
import { type DocmatixRow, DUCK_COMPRESSIONS, writeDocmatixParquet } from '../helpers/duckdb-fixtures.ts';
import { closeParquetReaderSuite, openParquetReaderSuite } from '../helpers/parquet-reader-suite.ts';
import { readAllPartitions, readGlob } from '../helpers/read-source.ts';
import type { TestS3 } from '../helpers/s3-server.ts';

let dir: string;
let s3: TestS3;
let reader: SourceReader;
let images: Uint8Array[];

const readPartitions = (partitions: Partition[]) => readAllPartitions(reader, partitions);
const readFiles = (pattern: string, targetRecords?: number) => readGlob(reader, pattern, targetRecords);

/** Documents of 1–3 pages with 1–3 QA pairs each, as in Docmatix's `images` config. */
function docRows(n: number): DocmatixRow[] {
  return Array.from({ length: n }, (_, i) => ({
    images: Array.from({ length: 1 + (i % 3) }, (_, k) => ({
      bytes: images[(i + k) % images.length],
      path: null,
    })),
    texts: Array.from({ length: 1 + ((i + 1) % 3) }, (_, k) => ({
      user: `What is the total amount on page ${k + 1} of document ${i}?`,
      assistant: `The total amount is ${(i + 1) * 100 + k} dollars.`,
      source: k === 1 ? null : `PDFA key: ${1000 + i}`,
    })),
  }));
}

function expectRecord(rec: RawRecord, row: DocmatixRow, uri: string, index: number): void {
  assert.equal(rec.id, `train-00000-of-00001/${index}`);
  assert.equal(rec.origin, `${uri}#row=${index}`);
  assert.equal(rec.source, 'docmatix');
  assert.deepEqual(
    rec.images.map((im) => Buffer.from(im.bytes).toString('base64')),
    (row.images ?? []).map((im) => Buffer.from(im?.bytes ?? []).toString('base64')),
  );
  const texts = row.texts ?? [];
  assert.deepEqual(
    rec.conversations,
    texts.flatMap((t) => [
      { from: 'human', value: t.user },
      { from: 'gpt', value: t.assistant },
    ]),
  );
  // No <image> tokens here: normalisation places them.
  assert.ok(rec.conversations.every((t) => !t.value.includes('<image>')));
  assert.deepEqual(rec.meta, { text_sources: texts.map((t) => t.source) });
}

before(async () => {
  ({ dir, s3, reader, images } = await openParquetReaderSuite('docmatix', {
    bucket: 'docs',
    images: 4,
    imagePrefix: 'docmatix',
  }));
});
after(() => closeParquetReaderSuite({ dir, s3 }));

describe('docmatix reader', () => {
  for (const compression of DUCK_COMPRESSIONS) {
    it(`reads ${compression}: page images in order, QA pairs as alternating turns, sources in meta`, async () => {
      const folder = join(dir, compression, 'data');
      await mkdir(folder, { recursive: true });
      const uri = join(folder, 'train-00000-of-00001.parquet');
      const rows = docRows(14);
      await writeDocmatixParquet(uri, rows, { compression, rowGroupSize: 4 });
      const { records, quarantined } = await readFiles(uri);
      assert.equal(quarantined.length, 0);
      assert.equal(records.length, 14);
      records.forEach((rec, i) => {
        expectRecord(rec, rows[i], uri, i);
      });
    });
  }

  it('quarantines bad documents and keeps reading', async () => {
    const rows = docRows(10);
    rows[1] = { ...rows[1], images: [] };
    rows[3] = { ...rows[3], images: [{ bytes: images[0], path: null }, null] };
    rows[4] = { ...rows[4], images: [{ bytes: null, path: 'page-1.png' }] };
    rows[6] = { ...rows[6], texts: [{ user: 'What?', assistant: null, source: 'x' }] };
    rows[8] = { ...rows[8], texts: null };
    const folder = join(dir, 'bad', 'data');
    await mkdir(folder, { recursive: true });
    const uri = join(folder, 'train-00000-of-00001.parquet');
    await writeDocmatixParquet(uri, rows, { compression: 'zstd', rowGroupSize: 3 });
    const { records, quarantined } = await readFiles(uri);
    assert.equal(records.length + quarantined.length, 10);
    assert.deepEqual(
      quarantined.map((q) => [q.origin, q.reason, q.message, q.id]),
      [
        [
          `${uri}#row=1`,
          'missing-image',
          "field 'images' is empty: a DocMatix document has at least one page image",
          'train-00000-of-00001/1',
        ],
        [`${uri}#row=3`, 'missing-image', "field 'images[1]' is null", 'train-00000-of-00001/3'],
        [
          `${uri}#row=4`,
          'missing-image',
          "field 'images[0].bytes' is null: image 'page-1.png' is not embedded in the file (set the source's image_root to read it from a folder)",
          'train-00000-of-00001/4',
        ],
        [`${uri}#row=6`, 'missing-field', "field 'texts[0].assistant' is missing", 'train-00000-of-00001/6'],
        [`${uri}#row=8`, 'missing-field', "field 'texts' is missing", 'train-00000-of-00001/8'],
      ],
    );
    const good = [0, 2, 5, 7, 9];
    records.forEach((rec, k) => {
      expectRecord(rec, rows[good[k]], uri, good[k]);
    });
  });

  it('fails on a missing required column and on an unreadable file, naming the file', async () => {
    const uri = join(dir, 'notexts.parquet');
    await writeDocmatixParquet(uri, docRows(3), { drop: ['texts'], extra: true });
    await assert.rejects(
      reader.plan(await expandGlob(uri), {}),
      (e: unknown) =>
        e instanceof SourceFileError && e.uri === uri && /missing required column 'texts'/.test(e.message),
    );
    const garbage = join(dir, 'garbage.parquet');
    await writeFile(garbage, 'PAR1 but not really a parquet file PAR1');
    await assert.rejects(
      reader.plan(await expandGlob(garbage), {}),
      /garbage\.parquet: cannot read parquet footer/,
    );
  });

  it('reads from S3, and partitions cover every document exactly once', async () => {
    const rows = docRows(21);
    rows[13] = { ...rows[13], images: null };
    const local = join(dir, 'docs-s3.parquet');
    await writeDocmatixParquet(local, rows, { compression: 'gzip', rowGroupSize: 4 });
    await s3.client.send(
      new PutObjectCommand({
        Bucket: 'docs',
        Key: 'Docmatix/data/train-00000-of-00001.parquet',
        Body: await readFile(local),
      }),
    );
    const uri = 's3://docs/Docmatix/data/train-00000-of-00001.parquet';
    const files = await expandGlob('s3://docs/Docmatix/data/*.parquet');
    const full = await readFiles('s3://docs/Docmatix/data/*.parquet');
    assert.equal(full.records.length, 20);
    assert.deepEqual(
      full.quarantined.map((q) => [q.origin, q.reason]),
      [[`${uri}#row=13`, 'missing-field']],
    );
    full.records.forEach((rec) => {
      const i = Number(rec.origin.slice(rec.origin.indexOf('#row=') + 5));
      expectRecord(rec, rows[i], uri, i);
    });
    for (const target of [1, 5, 8, 100]) {
      const parts = await readPartitions(await reader.plan(files, { targetRecords: target }));
      assert.deepEqual(
        parts.records.map((r) => r.id),
        full.records.map((r) => r.id),
      );
      assert.equal(parts.quarantined.length, 1);
    }
  });
});
