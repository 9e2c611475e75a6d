import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { parquetMetadata } from 'hyparquet';
import { SAMPLE_PARQUET_FIELDS, sampleToParquetRow } from '../../core/parquet/sample-schema.ts';
import { writeParquet, writeParquetChunks } from '../../core/parquet/write.ts';
import type { Sample } from '../../core/schema.ts';
import { rowGroupSpan, shardDigests, shardHashes } from '../../manifests/shard-integrity.ts';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Rows whose image pages are large enough to be kept by reference (not copied into the writer's chunks). */
function rows(n: number): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i): Sample => {
    const bytes = new Uint8Array(20_000 + (i % 5) * 7_000).map((_, k) => (k * 31 + i * 7) & 0xff);
    return {
      id: `s${i}`,
      source: 'test',
      images: i % 4 ? [{ bytes, width: 8, height: 8, format: 'jpeg' }] : [],
      conversations: [{ from: 'human', value: `question ${i}` }],
      origin: `test:${i}`,
      key: BigInt(i),
    };
  }).map(sampleToParquetRow);
}

describe('shard digests from the chunks a shard is written as', () => {
  it('equal the hashes of the joined bytes, with the footer parsed from the last chunks', async () => {
    const options = { fields: SAMPLE_PARQUET_FIELDS, rows: rows(300), rowGroupSize: 128 };
    const chunks = await writeParquetChunks(options);
    const bytes = await writeParquet(options);
    assert.ok(chunks.length > 10, `expected the pages as separate chunks, got ${chunks.length}`);
    assert.equal(sha256(Buffer.concat(chunks)), sha256(bytes));

    const digests = shardDigests(chunks);
    assert.deepEqual(digests, { sha256: sha256(bytes), ...shardHashes(bytes) });
    const metadata = parquetMetadata(bytes);
    assert.equal(digests.rowGroupSha256.length, 3);
    digests.rowGroupSha256.forEach((h, g) => {
      const { start, end } = rowGroupSpan(metadata, g);
      assert.equal(h, sha256(bytes.subarray(start, end)));
    });
    assert.equal(digests.footer.sha256, sha256(bytes.subarray(digests.footer.offset)));
  });

  it('handle a file that is one chunk', async () => {
    const options = { fields: SAMPLE_PARQUET_FIELDS, rows: [] };
    const chunks = await writeParquetChunks(options);
    assert.equal(chunks.length, 1);
    assert.deepEqual(shardDigests(chunks), { sha256: sha256(chunks[0]), ...shardHashes(chunks[0]) });
  });
});
