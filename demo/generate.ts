// Writes a few dozen samples of every source format, with real encoded images, into one folder.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonDemoData } from './formats/json.ts';
import { writeParquetDemoData } from './formats/parquet.ts';

export async function generateDemoData(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  // Each format's writer is added here as it lands (sources/*).
  await writeParquetDemoData(dir);
  await writeJsonDemoData(dir);
  await writeFile(join(dir, '.complete'), 'ok\n');
}
