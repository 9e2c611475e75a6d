import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { SourceFileError } from '../../core/errors.ts';
import { poisonReleasedMemory } from '../../core/parquet/group-memory.ts';
import type { RawRecord } from '../../core/schema.ts';
import { expandGlob } from '../../core/storage/index.ts';
import { recapSourceOf } from '../../sources/llava-recap.ts';
import type { Partition, ReadItem, SourceReader } from '../../sources/types.ts';
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

function recapRows(n: number): ImageConversationRow[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `GCC_train_${String(1000 + i).padStart(9, '0')}`,
    image: { bytes: images[i % images.length], path: i % 3 === 0 ? `GCC_train_${1000 + i}.jpg` : null },
    conversations: [
      { from: 'human', value: `<image>\nWhat is happening in this image? ${i % 4 ? '' : 'Be detailed.'}` },
      {
        from: 'gpt',
        value: `The image shows scene number ${i}. Several shapes overlap on a gradient background. The colours shift from light to dark.`,
      },
    ],
    data_source: i % 5 === 0 ? null : 'cc3m',
  }));
}

function expectRecord(rec: RawRecord, row: ImageConversationRow, uri: string, index: number): void {
  assert.equal(rec.id, row.id);
  assert.equal(rec.origin, `${uri}#row=${index}`);
  assert.equal(rec.source, 'llava-recap/cc3m');
  assert.equal(rec.images.length, 1);
  assert.deepEqual(Buffer.from(rec.images[0].bytes), Buffer.from(row.image?.bytes ?? []));
  assert.equal(rec.images[0].path, row.image?.path ?? undefined);
  assert.deepEqual(rec.conversations, row.conversations);
  assert.deepEqual(rec.meta, row.data_source === null ? {} : { data_source: row.data_source });
}

before(async () => {
  ({ dir, s3, reader, images } = await openParquetReaderSuite('llava-recap', {
    bucket: 'datasets',
    images: 6,
    imagePrefix: 'recap',
  }));
});
after(() => closeParquetReaderSuite({ dir, s3 }));

describe('llava-recap reader', () => {
  for (const compression of DUCK_COMPRESSIONS) {
    it(`reads a ${compression} file written by DuckDB: ids, embedded images, conversations, data_source`, async () => {
      const folder = join(dir, `LLaVA-ReCap-CC3M-${compression}`, 'data');
      await mkdir(folder, { recursive: true });
      const uri = join(folder, 'train-00000-of-00001.parquet');
      const rows = recapRows(23);
      await writeImageConversationParquet(uri, rows, { compression, rowGroupSize: 5 });
      const { records, quarantined } = await readFiles(uri);
      assert.equal(quarantined.length, 0);
      assert.equal(records.length, rows.length);
      records.forEach((rec, i) => {
        expectRecord(rec, rows[i], uri, i);
      });
    });
  }

  it('names the release from the folder', () => {
    assert.equal(
      recapSourceOf('s3://b/LLaVA-ReCap-CC12M/data/train-00001-of-00100.parquet'),
      'llava-recap/cc12m',
    );
    assert.equal(recapSourceOf('/d/lmms-lab/LLaVA-ReCap-558K/data/x.parquet'), 'llava-recap/558k');
    assert.equal(recapSourceOf('/d/recap-cc3m/data/x.parquet'), 'llava-recap/cc3m');
    assert.equal(recapSourceOf('/d/mystery/x.parquet'), 'llava-recap');
  });

  it('quarantines bad rows with their row origin and keeps reading; counts add up', async () => {
    const rows = recapRows(20);
    rows[2] = { ...rows[2], id: null };
    rows[5] = { ...rows[5], image: null };
    rows[7] = { ...rows[7], image: { bytes: null, path: 'GCC_train_7.jpg' } };
    rows[11] = { ...rows[11], conversations: null };
    rows[13] = {
      ...rows[13],
      conversations: [
        { from: 'human', value: '<image>\nWhat?' },
        { from: 'gpt', value: null },
      ],
    };
    rows[17] = { ...rows[17], conversations: [{ from: null, value: 'hi' }] };
    const uri = join(dir, 'recap-cc3m-bad', 'train.parquet');
    await mkdir(join(dir, 'recap-cc3m-bad'), { recursive: true });
    await writeImageConversationParquet(uri, rows, { compression: 'zstd', rowGroupSize: 6 });
    const { records, quarantined } = await readFiles(uri);
    assert.equal(records.length + quarantined.length, rows.length);
    assert.deepEqual(
      quarantined.map((q) => [q.origin, q.reason, q.message, q.id, q.stage, q.source]),
      [
        [
          `${uri}#row=2`,
          'missing-id',
          'no `id` field (set `ids: derive` on the source to number records by file and position)',
          undefined,
          'read',
          'llava-recap/cc3m',
        ],
        [`${uri}#row=5`, 'missing-field', "field 'image' is missing", rows[5].id, 'read', 'llava-recap/cc3m'],
        [
          `${uri}#row=7`,
          'missing-image',
          "field 'image.bytes' is null: image 'GCC_train_7.jpg' is not embedded in the file (set the source's image_root to read it from a folder)",
          rows[7].id,
          'read',
          'llava-recap/cc3m',
        ],
        [
          `${uri}#row=11`,
          'missing-field',
          "field 'conversations' is missing",
          rows[11].id,
          'read',
          'llava-recap/cc3m',
        ],
        [
          `${uri}#row=13`,
          'missing-field',
          "field 'conversations[1].value' is missing",
          rows[13].id,
          'read',
          'llava-recap/cc3m',
        ],
        [
          `${uri}#row=17`,
          'missing-field',
          "field 'conversations[0].from' is missing",
          rows[17].id,
          'read',
          'llava-recap/cc3m',
        ],
      ],
    );
    const good = [0, 1, 3, 4, 6, 8, 9, 10, 12, 14, 15, 16, 18, 19];
    assert.deepEqual(
      records.map((r) => r.origin),
      good.map((i) => `${uri}#row=${i}`),
    );
    records.forEach((rec, k) => {
      expectRecord(rec, rows[good[k]], uri, good[k]);
    });
  });

  it('quarantines rows whose column has the wrong type (image stored as a path string)', async () => {
    const uri = join(dir, 'recap-cc3m-wrongtype.parquet');
    await writeImageConversationParquet(uri, recapRows(4), {
      compression: 'snappy',
      override: { image: "'images/' || _row || '.jpg'" },
    });
    const { records, quarantined } = await readFiles(uri);
    assert.equal(records.length, 0);
    assert.deepEqual(
      quarantined.map((q) => [q.origin, q.reason, q.message]),
      [0, 1, 2, 3].map((i) => [
        `${uri}#row=${i}`,
        'wrong-type',
        "field 'image' must be an image struct {bytes, path}, got string",
      ]),
    );
  });

  it('keeps extra columns as metadata, defaults a missing optional column, fails on a missing required one', async () => {
    const rows = recapRows(6);
    const extra = join(dir, 'recap-cc3m-extra.parquet');
    await writeImageConversationParquet(extra, rows, { extra: true, drop: ['data_source'] });
    const { records } = await readFiles(extra);
    assert.equal(records.length, 6);
    records.forEach((r, i) => {
      assert.deepEqual(r.meta, { width_hint: i * 7, license: 'cc-by' });
    });
    assert.equal(records[3].conversations[1].value, rows[3].conversations?.[1].value);

    const missing = join(dir, 'recap-cc3m-noconv.parquet');
    await writeImageConversationParquet(missing, rows, { drop: ['conversations'] });
    const files = await expandGlob(missing);
    await assert.rejects(reader.plan(files, {}), (e: unknown) => {
      assert.ok(e instanceof SourceFileError);
      assert.equal(e.uri, missing);
      assert.match(e.message, /missing required column 'conversations' for format llava-recap/);
      return true;
    });
    const partition: Partition = {
      format: 'llava-recap',
      uri: missing,
      kind: 'row-groups',
      start: 0,
      end: 1,
      fileSize: files[0].size,
    };
    await assert.rejects(
      readPartitions([partition]),
      /recap-cc3m-noconv\.parquet: missing required column 'conversations'/,
    );
  });

  it('cuts files into partitions of whole row groups that cover every row exactly once', async () => {
    const rows = recapRows(37);
    rows[9] = { ...rows[9], id: null };
    const a = join(dir, 'parts', 'recap-cc3m', 'train-00000-of-00002.parquet');
    const b = join(dir, 'parts', 'recap-cc3m', 'train-00001-of-00002.parquet');
    await mkdir(join(dir, 'parts', 'recap-cc3m'), { recursive: true });
    await writeImageConversationParquet(a, rows, { compression: 'zstd', rowGroupSize: 4 });
    await writeImageConversationParquet(b, rows.slice(0, 11), { compression: 'snappy', rowGroupSize: 3 });
    const files = await expandGlob(join(dir, 'parts', 'recap-cc3m', '*.parquet'));
    const full = await readFiles(join(dir, 'parts', 'recap-cc3m', '*.parquet'));
    assert.equal(full.records.length + full.quarantined.length, 48);
    assert.equal(full.quarantined.length, 2);
    for (const target of [1, 4, 5, 9, 20, 1000]) {
      const plan = await reader.plan(files, { targetRecords: target });
      for (const p of plan) {
        assert.equal(p.kind, 'row-groups');
        assert.ok(p.end > p.start);
        if (target <= 4 && p.uri === a) assert.equal(p.end - p.start, 1);
      }
      assert.equal(
        plan.reduce((s, p) => s + (p.records ?? 0), 0),
        48,
      );
      // Plans travel through JSON (plan.json, job data).
      const parts = await readPartitions(JSON.parse(JSON.stringify(plan)) as Partition[]);
      assert.deepEqual(
        parts.records.map((r) => r.origin),
        full.records.map((r) => r.origin),
        `target ${target}`,
      );
      assert.deepEqual(
        parts.quarantined.map((q) => q.origin),
        [`${a}#row=9`, `${b}#row=9`],
      );
    }
    const coarse = await reader.plan(files, { targetRecords: 20 });
    assert.deepEqual(
      coarse.map((p) => [p.uri, p.start, p.end, p.records]),
      [
        [a, 0, 5, 20],
        [a, 5, 10, 17],
        [b, 0, 4, 11],
      ],
    );
  });

  it('with recycle, releasing each item a few items later as ingest does: the same records as without', async () => {
    // Megabyte image chunks (~300 KB images, 8 rows a group) are what the reader lends; one row is quarantined.
    const big = (i: number) => Uint8Array.from({ length: 300_000 + i }, (_, k) => (k * 31 + i * 7) & 0xff);
    const rows = recapRows(29).map((r, i) => ({ ...r, image: { bytes: big(i), path: null } }));
    rows[11] = { ...rows[11], id: null };
    const uri = join(dir, 'recap-cc3m-lent', 'train.parquet');
    await mkdir(join(dir, 'recap-cc3m-lent'), { recursive: true });
    await writeImageConversationParquet(uri, rows, { compression: 'uncompressed', rowGroupSize: 8 });
    const plan = await reader.plan(await expandGlob(uri), { targetRecords: 16 });
    const seen = (item: ReadItem) =>
      item.kind === 'record'
        ? `${item.record.id} ${Buffer.from(item.record.images[0].bytes).toString('base64')}`
        : `quarantine ${item.record.origin}`;
    const plainRead: string[] = [];
    for (const p of plan) for await (const item of reader.read(p)) plainRead.push(seen(item));
    assert.equal(plainRead.length, 29);
    assert.equal(plainRead[11], `quarantine ${uri}#row=11`);
    // Each item is looked at only when released, 5 items (and so often a row group) later, with released memory
    // poisoned: a group handed back before all its items were released would read as 0xdb here.
    poisonReleasedMemory(true);
    try {
      const recycled: string[] = [];
      let lent = 0;
      const pending: ReadItem[] = [];
      const settle = (item: ReadItem | undefined) => {
        if (!item) return;
        recycled.push(seen(item));
        item.release?.();
      };
      for (const p of plan) {
        for await (const item of reader.read(p, { recycle: true })) {
          if (item.release) lent++;
          pending.push(item);
          if (pending.length > 5) settle(pending.shift());
        }
      }
      while (pending.length) settle(pending.shift());
      assert.equal(lent, 29);
      assert.deepEqual(recycled, plainRead);
    } finally {
      poisonReleasedMemory(false);
    }
  });

  it('reads from S3 through ranged reads, same records as from disk', async () => {
    const rows = recapRows(17);
    const local = join(dir, 's3src.parquet');
    await writeImageConversationParquet(local, rows, { compression: 'gzip', rowGroupSize: 4 });
    for (const n of ['00000', '00001']) {
      await s3.client.send(
        new PutObjectCommand({
          Bucket: 'datasets',
          Key: `LLaVA-ReCap-CC3M/data/train-${n}-of-00002.parquet`,
          Body: await readFile(local),
        }),
      );
    }
    const plan = await reader.plan(await expandGlob('s3://datasets/LLaVA-ReCap-CC3M/data/*.parquet'), {
      targetRecords: 8,
    });
    // 17 rows in groups of 4,4,4,4,1: [0,2) [2,4) [4,5) per file.
    assert.deepEqual(
      plan.map((p) => [p.start, p.end, p.records]),
      [
        [0, 2, 8],
        [2, 4, 8],
        [4, 5, 1],
        [0, 2, 8],
        [2, 4, 8],
        [4, 5, 1],
      ],
    );
    const { records, quarantined } = await readPartitions(plan);
    assert.equal(quarantined.length, 0);
    assert.equal(records.length, 34);
    const uri = 's3://datasets/LLaVA-ReCap-CC3M/data/train-00001-of-00002.parquet';
    records.slice(17).forEach((rec, i) => {
      expectRecord(rec, rows[i], uri, i);
    });
  });

  it('fails with SourceFileError for an unreadable file and for a file changed since planning', async () => {
    const bad = join(dir, 'recap-cc3m-garbage.parquet');
    await writeFile(bad, Buffer.alloc(5000, 7));
    await assert.rejects(
      reader.plan(await expandGlob(bad), {}),
      (e: unknown) =>
        e instanceof SourceFileError && e.uri === bad && /cannot read parquet footer/.test(e.message),
    );
    const uri = join(dir, 'recap-cc3m-changed.parquet');
    await writeImageConversationParquet(uri, recapRows(8), { rowGroupSize: 4 });
    const plan = await reader.plan(await expandGlob(uri), { targetRecords: 4 });
    await writeImageConversationParquet(uri, recapRows(9), { rowGroupSize: 4 });
    await assert.rejects(readPartitions(plan), /file changed since it was planned/);
  });
});
