// The reader contract: every dataset family implements SourceReader. plan() cuts files into partitions that
// together cover every record exactly once; read() streams one partition with bounded memory.
import type { QuarantineRecord } from '../core/quarantine.ts';
import type { RawRecord } from '../core/schema.ts';
import type { ObjectInfo } from '../core/storage/index.ts';

export const SOURCE_FORMATS = [
  'llava-recap',
  'llava-pretrain',
  'llava-json',
  'cambrian',
  'llava-onevision',
  'docmatix',
  'messages',
] as const;

export type SourceFormat = (typeof SOURCE_FORMATS)[number];

/**
 * A unit of reading work. JSON-serialisable (it travels through plan.json and BullMQ job data).
 * - `row-groups`: parquet row groups [start, end) of one file
 * - `bytes`: records whose first byte lies in [start, end) of a jsonl file (or of a json array's items)
 */
export interface Partition {
  format: SourceFormat;
  uri: string;
  kind: 'row-groups' | 'bytes';
  start: number;
  end: number;
  /** Where referenced images live: a folder, an s3:// prefix, or a .zip/.tar archive. */
  imageRoot?: string;
  /** Records in this partition when known cheaply (parquet metadata), else an estimate. */
  records?: number;
  /** Size of the file when planned, to detect input changes between plan and read. */
  fileSize: number;
  /**
   * `bytes` partitions: index of the first record starting in [start, end) — the item index in a json
   * array, the 0-based line index in a jsonl file — so origins (`#item=`, `#line=`) need no rescan.
   */
  firstItem?: number;
  /** Records are numbered `<file stem>/<position>` instead of read from an `id` field (`ids: derive`). */
  deriveIds?: boolean;
}

export interface PlanOptions {
  /** Where referenced images live; for parquet sources, where image structs with only a `path` resolve. */
  imageRoot?: string;
  /** `derive`: number records by file and position instead of reading an `id` field. */
  ids?: 'derive';
  /** Aim for partitions of about this many records (parquet: whole row groups). */
  targetRecords?: number;
  /** Aim for partitions of about this many bytes (json/jsonl). */
  targetBytes?: number;
}

export type ReadItem = (
  | { kind: 'record'; record: RawRecord }
  | { kind: 'quarantine'; record: QuarantineRecord }
) & {
  /**
   * Only when read with `recycle` and the item's bytes lie in memory the reader can reuse: call it once nothing
   * of the item (its image bytes above all) is used any more. Until every item sharing that memory has called it,
   * the memory stays the item's; an item never released keeps it for good (it goes to the GC, not for reuse).
   */
  release?: () => void;
};

export interface ReadOptions {
  /**
   * The caller calls each item's `release` when done with it, so the reader may read later data into the memory
   * of released items instead of fresh memory (parquet: uncompressed image chunks, snappy image pages, zstd image
   * pages of stored blocks). Readers without such memory ignore it.
   */
  recycle?: boolean;
}

export interface SourceReader {
  readonly format: SourceFormat;
  plan(files: ObjectInfo[], options: PlanOptions): Promise<Partition[]>;
  /** Streams the partition. Bad records become quarantine items; an unreadable file throws SourceFileError. */
  read(partition: Partition, options?: ReadOptions): AsyncIterable<ReadItem>;
}
