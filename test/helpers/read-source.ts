// Reads partitions of a source through its reader and splits what comes out into records and quarantine records.
import type { QuarantineRecord } from '../../core/quarantine.ts';
import type { RawRecord } from '../../core/schema.ts';
import { expandGlob } from '../../core/storage/index.ts';
import type { Partition, SourceReader } from '../../sources/types.ts';

export interface ReadItems {
  records: RawRecord[];
  quarantined: QuarantineRecord[];
}

export async function readAllPartitions(reader: SourceReader, partitions: Partition[]): Promise<ReadItems> {
  const out: ReadItems = { records: [], quarantined: [] };
  for (const p of partitions) {
    for await (const item of reader.read(p)) {
      if (item.kind === 'record') out.records.push(item.record);
      else out.quarantined.push(item.record);
    }
  }
  return out;
}

/** Plans the files matching `pattern` (parquet: whole row groups of about `targetRecords`) and reads them all. */
export async function readGlob(
  reader: SourceReader,
  pattern: string,
  targetRecords = 1e9,
): Promise<ReadItems> {
  return readAllPartitions(reader, await reader.plan(await expandGlob(pattern), { targetRecords }));
}
