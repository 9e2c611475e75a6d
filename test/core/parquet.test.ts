import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { SourceFileError } from '../../core/errors.ts';
import { poisonReleasedMemory } from '../../core/parquet/group-memory.ts';
import { openParquet, type RowGroupRows, readRowGroups } from '../../core/parquet/read.ts';
import { storageFor } from '../../core/storage/index.ts';
import { drawDemoImage } from '../../demo/images.ts';
import {
  DUCK_COMPRESSIONS,
  type DuckWriteOptions,
  type ImageConversationRow,
  writeDocmatixParquet,
  writeImageConversationParquet,
} from '../helpers/duckdb-fixtures.ts';
import { startS3, type TestS3 } from '../helpers/s3-server.ts';

let dir: string;
let s3: TestS3;
let images: Uint8Array[];

function recapRows(n: number): ImageConversationRow[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `row-${i}`,
    image: i % 9 === 4 ? null : { bytes: images[i % images.length], path: i % 2 ? `images/${i}.jpg` : null },
    conversations: [
      { from: 'human', value: `<image>\nWhat is happening in this image? ${i}` },
      { from: 'gpt', value: i % 5 === 0 ? null : `Caption ${i}. `.repeat(1 + (i % 4)) },
    ],
    data_source: i % 7 === 0 ? null : `src-${i % 3}`,
  }));
}

async function readAll(uri: string, columns: string[]): Promise<Record<string, unknown>[]> {
  const handle = await openParquet(uri);
  const out: Record<string, unknown>[] = [];
  for await (const { rows } of readRowGroups(handle, { start: 0, end: handle.rowGroups.length, columns }))
    out.push(...rows);
  return out;
}

function plain(rows: ImageConversationRow[]): unknown[] {
  return rows.map((r) => ({
    id: r.id,
    image: r.image && { bytes: Buffer.from(r.image.bytes ?? []).toString('hex'), path: r.image.path },
    conversations: r.conversations,
    data_source: r.data_source,
  }));
}

function plainRead(rows: Record<string, unknown>[]): unknown[] {
  return rows.map((r) => {
    const image = r.image as { bytes: Uint8Array; path: string | null } | null;
    return {
      id: r.id,
      image: image && { bytes: Buffer.from(image.bytes).toString('hex'), path: image.path },
      conversations: r.conversations,
      data_source: r.data_source,
    };
  });
}

/** `length` incompressible bytes from `seed` (an LCG's high bytes). */
function noiseBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < out.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/**
 * A copy of `path`, named `name` in the test folder, with the middle of row group `group`'s image chunk (column 1)
 * overwritten by 0xff, `half` bytes either side.
 */
async function corruptImageChunk(path: string, group: number, half: number, name: string): Promise<string> {
  const chunk = (await openParquet(path)).metadata.row_groups[group].columns[1].meta_data;
  assert.ok(chunk);
  const bytes = Buffer.from(await readFile(path));
  const mid = Number(chunk.data_page_offset) + Math.floor(Number(chunk.total_compressed_size) / 2);
  bytes.fill(0xff, mid - half, mid + half);
  const corrupt = join(dir, name);
  await writeFile(corrupt, bytes);
  return corrupt;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-parquet-'));
  s3 = await startS3(['pq']);
  images = await Promise.all(
    (['jpeg', 'png', 'webp'] as const).map((f, i) =>
      drawDemoImage(`parquet-core-${i}`, f, { width: 40, height: 30 }),
    ),
  );
});

after(async () => {
  await s3.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('core/parquet read: files written by DuckDB', () => {
  const variants: { name: string; opts: DuckWriteOptions }[] = [
    ...DUCK_COMPRESSIONS.map((c) => ({ name: c, opts: { compression: c } })),
    { name: 'zstd, no dictionary (PLAIN)', opts: { compression: 'zstd', plain: true } },
    {
      name: 'snappy, parquet v2 pages (DELTA_LENGTH_BYTE_ARRAY)',
      opts: { compression: 'snappy', parquetVersion: 'V2' },
    },
  ];
  for (const v of variants) {
    it(`reads ${v.name}: nested lists, image structs, nulls, every row group`, async () => {
      const rows = recapRows(45);
      const path = join(dir, `recap-${v.name.replace(/\W+/g, '-')}.parquet`);
      await writeImageConversationParquet(path, rows, { ...v.opts, rowGroupSize: 10 });
      const handle = await openParquet(path);
      assert.deepEqual(
        handle.rowGroups.map((g) => [g.rowStart, g.numRows]),
        [
          [0, 10],
          [10, 10],
          [20, 10],
          [30, 10],
          [40, 5],
        ],
      );
      assert.deepEqual(handle.columns, ['id', 'image', 'conversations', 'data_source']);
      const got = await readAll(path, ['id', 'image', 'conversations', 'data_source']);
      assert.deepEqual(plainRead(got), plain(rows));
    });
  }

  it('reads DocMatix lists of images and of {user, assistant, source}', async () => {
    const rows = Array.from({ length: 12 }, (_, i) => ({
      images: Array.from({ length: 1 + (i % 3) }, (_, k) => ({ bytes: images[(i + k) % 3], path: null })),
      texts: [{ user: `Q${i}?`, assistant: `A${i}.`, source: 'PDFA key: 1' }],
    }));
    const path = join(dir, 'docmatix.parquet');
    await writeDocmatixParquet(path, rows, { compression: 'zstd', rowGroupSize: 5 });
    const got = await readAll(path, ['images', 'texts']);
    assert.equal(got.length, 12);
    for (const [i, r] of got.entries()) {
      const imgs = r.images as { bytes: Uint8Array; path: string | null }[];
      assert.equal(imgs.length, 1 + (i % 3));
      assert.deepEqual(Buffer.from(imgs[0].bytes), Buffer.from(images[i % 3]));
      assert.deepEqual(r.texts, rows[i].texts);
    }
  });

  it('reads only the requested columns and reads the footer once', async () => {
    const rows = recapRows(40).map((r, i) => ({
      ...r,
      image: { bytes: new Uint8Array(20_000).fill(i), path: null },
    }));
    const path = join(dir, 'columns.parquet');
    await writeImageConversationParquet(path, rows, { compression: 'uncompressed', rowGroupSize: 10 });
    const storage = storageFor(path);
    const original = storage.readRange.bind(storage);
    const reads: [number, number][] = [];
    storage.readRange = async (uri, start, end) => {
      if (uri === path) reads.push([start, end]);
      return original(uri, start, end);
    };
    try {
      const got = await readAll(path, ['id']);
      assert.deepEqual(
        got.map((r) => r.id),
        rows.map((r) => r.id),
      );
      assert.deepEqual(Object.keys(got[0]), ['id']);
      const size = (await readFile(path)).byteLength;
      const bytesRead = reads.reduce((s, [a, b]) => s + (b - a), 0);
      // 800 KB of image bytes are never fetched: only the tail (footer) and the small id chunks.
      assert.ok(size > 800_000, `fixture is ${size} bytes`);
      assert.ok(bytesRead < 300_000, `read ${bytesRead} of ${size} bytes`);
      assert.equal(reads.filter(([, b]) => b === size).length, 1, 'footer fetched once');
    } finally {
      storage.readRange = original;
    }
  });

  it('reads a range of row groups over S3 with ranged GETs', async () => {
    const rows = recapRows(30);
    const path = join(dir, 's3.parquet');
    await writeImageConversationParquet(path, rows, { compression: 'zstd', rowGroupSize: 10 });
    await s3.client.send(
      new PutObjectCommand({ Bucket: 'pq', Key: 'data/s3.parquet', Body: await readFile(path) }),
    );
    const handle = await openParquet('s3://pq/data/s3.parquet');
    const got: Record<string, unknown>[] = [];
    for await (const g of readRowGroups(handle, {
      start: 1,
      end: 3,
      columns: ['id', 'image', 'conversations'],
    })) {
      assert.equal(g.rows.length, g.group.numRows);
      got.push(...g.rows);
    }
    assert.deepEqual(
      got.map((r) => r.id),
      rows.slice(10, 30).map((r) => r.id),
    );
    const img = got[0].image as { bytes: Uint8Array };
    assert.deepEqual(Buffer.from(img.bytes), Buffer.from(rows[10].image?.bytes ?? []));
  });

  it('reads megabyte pages through recycled memory: earlier groups stay intact while later groups and files are read', async () => {
    // ~200 KB of incompressible bytes per image: every image chunk is past LARGE_BUFFER_BYTES and past the 2 MB up
    // to which hyparquet merges neighbouring chunks into one fetch (so it is read on its own, into recycled memory).
    const noise = (seed: number) => noiseBytes(200_000 + seed * 7, seed);
    const bigRows = (k: number): ImageConversationRow[] =>
      recapRows(36).map((r, i) => ({
        ...r,
        image: i % 9 === 4 ? null : { bytes: noise(k * 100 + i), path: i % 2 ? `images/${i}.jpg` : null },
      }));
    const variants: { name: string; opts: DuckWriteOptions }[] = [
      ...DUCK_COMPRESSIONS.map((c) => ({ name: c, opts: { compression: c } })),
      { name: 'snappy-v2', opts: { compression: 'snappy', parquetVersion: 'V2' } },
    ];
    const kept: { name: string; expected: unknown[]; got: Record<string, unknown>[] }[] = [];
    for (const [k, v] of variants.entries()) {
      const rows = bigRows(k);
      const path = join(dir, `big-${v.name}.parquet`);
      await writeImageConversationParquet(path, rows, { ...v.opts, rowGroupSize: 12 });
      const handle = await openParquet(path);
      const imageChunk = Number(handle.metadata.row_groups[0].columns[1].meta_data?.total_compressed_size);
      assert.ok(imageChunk > 2 << 20, `${v.name}: image chunk is ${imageChunk} bytes`);
      const got: Record<string, unknown>[] = [];
      for await (const g of readRowGroups(handle, { start: 0, end: 3, columns: handle.columns }))
        got.push(...g.rows);
      kept.push({ name: v.name, expected: plain(rows), got });
    }
    // Checked only now, after every file's groups reused the memory the first groups were decoded from.
    for (const { name, expected, got } of kept) assert.deepEqual(plainRead(got), expected, name);

    // A corrupt megabyte page fails naming its group, and the reader after it still reads right.
    const path = join(dir, 'big-snappy.parquet');
    const handle = await openParquet(path);
    // Wide enough to reach past a snappy literal (at most 64 KiB) into the tags that follow it.
    const corrupt = await corruptImageChunk(path, 1, 200_000, 'big-corrupt.parquet');
    await assert.rejects(
      readAll(corrupt, ['id', 'image']),
      (e: unknown) =>
        e instanceof SourceFileError && /big-corrupt\.parquet: cannot decode row group 1/.test(e.message),
    );
    assert.deepEqual(plainRead(await readAll(path, handle.columns)), kept[0].expected);
  });

  for (const compression of ['uncompressed', 'zstd', 'snappy'] as const)
    it(`recycled reads of ${compression} megabyte image chunks: same rows, released memory reused, unreleased memory never`, async () => {
      // ~300 KB images, 12 rows a group: each group's image chunk (~3.6 MB) is read on its own, into lent memory
      // (zstd: the image page, stored blocks since noise does not compress, is copied into lent memory; snappy: the
      // image page, literal runs, is decoded into lent memory by the JS decoder).
      const rows = recapRows(36).map((r, i) => ({
        ...r,
        image: i % 9 === 4 ? null : { bytes: noiseBytes(300_000 + i * 13, i + 1), path: `images/${i}.jpg` },
      }));
      const path = join(dir, `big-${compression}-lent.parquet`);
      await writeImageConversationParquet(path, rows, { compression, rowGroupSize: 12 });
      const handle = await openParquet(path);
      const expected = plain(rows);
      const groups = () =>
        readRowGroups(handle, { start: 0, end: 3, columns: handle.columns, recycle: true });
      const imageBuffers = (g: RowGroupRows) =>
        g.rows.flatMap((r) => (r.image ? [(r.image as { bytes: Uint8Array }).bytes.buffer] : []));
      poisonReleasedMemory(true);
      try {
        // Released after each group: every group's rows as without recycling, read into one reused memory.
        const released: unknown[] = [];
        const buffers = new Set<ArrayBufferLike>();
        for await (const g of groups()) {
          assert.ok(g.release, `a ${compression} megabyte chunk is lent`);
          released.push(...plainRead(g.rows));
          for (const b of imageBuffers(g)) buffers.add(b);
          g.release();
        }
        assert.deepEqual(released, expected);
        assert.deepEqual(plainRead(await readAll(path, handle.columns)), expected);
        assert.ok(buffers.size < 3, `3 groups read into ${buffers.size} buffers`);

        // Never released: the rows stay intact while this file and others are read (recycled or not) after them.
        const held: Record<string, unknown>[] = [];
        const heldBuffers = new Set<ArrayBufferLike>();
        for await (const g of groups()) {
          held.push(...g.rows);
          for (const b of imageBuffers(g)) heldBuffers.add(b);
        }
        assert.equal(heldBuffers.size, 3);
        for await (const g of groups()) g.release?.();
        await readAll(join(dir, 'big-snappy.parquet'), ['id', 'image']);
        assert.deepEqual(plainRead(held), expected);

        // Misuse shows: a value kept past its group's release reads as poison, not as its bytes.
        for await (const g of groups()) {
          const bytes = (g.rows[0].image as { bytes: Uint8Array }).bytes;
          g.release?.();
          assert.ok(bytes.every((b) => b === 0xdb));
          break;
        }
      } finally {
        poisonReleasedMemory(false);
      }
    });

  it('fails with SourceFileError naming the file for a non-parquet, a truncated and a missing file', async () => {
    const notParquet = join(dir, 'not.parquet');
    await writeFile(notParquet, 'id,caption\n1,hello\n'.repeat(10));
    await assert.rejects(openParquet(notParquet), (e: unknown) => {
      assert.ok(e instanceof SourceFileError);
      assert.match(e.message, /not\.parquet: cannot read parquet footer: .*PAR1/);
      return true;
    });
    const good = join(dir, 'good.parquet');
    await writeImageConversationParquet(good, recapRows(20), { compression: 'snappy' });
    const bytes = await readFile(good);
    const truncated = join(dir, 'truncated.parquet');
    await writeFile(truncated, bytes.subarray(0, bytes.length - 100));
    await assert.rejects(
      openParquet(truncated),
      (e: unknown) => e instanceof SourceFileError && /truncated\.parquet/.test(e.message),
    );
    await assert.rejects(openParquet(join(dir, 'missing.parquet')), /missing\.parquet: no such file/);
  });

  it('fails with SourceFileError naming the row group when a page is corrupt', async () => {
    const rows = recapRows(20).map((r, i) => ({
      ...r,
      image: { bytes: new Uint8Array(5000).fill(i), path: null },
    }));
    const path = join(dir, 'corrupt.parquet');
    await writeImageConversationParquet(path, rows, { compression: 'zstd', rowGroupSize: 10 });
    const h2 = await openParquet(await corruptImageChunk(path, 1, 40, 'corrupt2.parquet'));
    const seen: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const g of readRowGroups(h2, { start: 0, end: 2, columns: ['id', 'image'] }))
          seen.push(g.group.index);
      })(),
      (e: unknown) =>
        e instanceof SourceFileError && /corrupt2\.parquet: cannot decode row group 1/.test(e.message),
    );
    assert.deepEqual(seen, [0]);
  });
});
