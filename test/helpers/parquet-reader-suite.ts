// Set-up shared by the parquet reader tests (ReCap, OneVision, DocMatix): a temp folder, a private S3 bucket, the
// reader and DuckDB-fixture images, made before a file's tests and removed after them.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getReader } from '../../sources/registry.ts';
import type { SourceReader } from '../../sources/types.ts';
import { fixtureImages } from './duckdb-fixtures.ts';
import { startS3, type TestS3 } from './s3-server.ts';

export interface ParquetReaderSuite {
  dir: string;
  s3: TestS3;
  reader: SourceReader;
  images: Uint8Array[];
}

export async function openParquetReaderSuite(
  format: string,
  o: { bucket: string; images: number; imagePrefix: string },
): Promise<ParquetReaderSuite> {
  return {
    dir: await mkdtemp(join(tmpdir(), `mixforge-${format}-`)),
    s3: await startS3([o.bucket]),
    reader: await getReader(format),
    images: await fixtureImages(o.images, o.imagePrefix),
  };
}

export async function closeParquetReaderSuite(s: Pick<ParquetReaderSuite, 'dir' | 's3'>): Promise<void> {
  await s.s3.stop();
  await rm(s.dir, { recursive: true, force: true });
}
