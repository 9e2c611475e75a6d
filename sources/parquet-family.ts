// The shared machinery of the parquet families (LLaVA-ReCap, LLaVA-OneVision, DocMatix): plan by footers into
// partitions of whole row groups, read one row group at a time with only the needed columns, one item per row.
import { SourceFileError } from '../core/errors.ts';
import { openParquet, type ParquetFileHandle, readRowGroups } from '../core/parquet/read.ts';
import type { QuarantineRecord } from '../core/quarantine.ts';
import type { RawImage, RawRecord, RawTurn } from '../core/schema.ts';
import { basenameUri, dirnameUri, type ObjectInfo } from '../core/storage/index.ts';
import {
  type Checked,
  checkConversations,
  checkId,
  checkOptionalString,
  isPlainObject,
  type Rejection,
  reject,
  typeName,
} from './field-checks.ts';
import type { Partition, PlanOptions, ReadItem, SourceFormat, SourceReader } from './types.ts';

/** Partitions aim at this many rows when the caller does not say (whole row groups, so often more). */
export const DEFAULT_TARGET_RECORDS = 10_000;

export interface ParquetColumn {
  name: string;
  /** A file without a required column cannot be read at all: SourceFileError naming file and column. */
  required: boolean;
}

/** What one row turns into: the record's fields, or the reason it is rejected. */
export type RowResult =
  | { ok: true; id: string; images: RawImage[]; conversations: RawTurn[]; meta: Record<string, unknown> }
  | Rejection;

export interface RowContext {
  uri: string;
  /** Index of the row in the file. */
  row: number;
}

export interface ParquetFamily {
  format: SourceFormat;
  columns: ParquetColumn[];
  /** `family/subset` of the records of one file. */
  sourceOf(uri: string): string;
  /** Check one row (values as hyparquet decodes them: strings, Uint8Array, arrays, objects, null). */
  toRecord(row: Record<string, unknown>, ctx: RowContext): RowResult;
}

/** The file name without `.parquet` (e.g. `train-00000-of-00001`). */
export function fileStem(uri: string): string {
  return basenameUri(uri).replace(/\.parquet$/i, '');
}

/** The name of the folder holding the file. */
export function parentFolder(uri: string): string {
  return basenameUri(dirnameUri(uri));
}

/**
 * A Hugging Face `Image` value (`struct<bytes, path>`) at `field`. `undefined` when the value is null or has
 * neither bytes nor path (no image); else the image or a rejection.
 */
export function checkImage(
  value: unknown,
  field: string,
  id: string | undefined,
): Checked<RawImage | undefined> {
  if (value === null || value === undefined) return { ok: true, value: undefined };
  if (!isPlainObject(value)) {
    return reject(
      'wrong-type',
      `field '${field}' must be an image struct {bytes, path}, got ${typeName(value)}`,
      id,
    );
  }
  const { bytes, path } = value;
  if (path !== null && path !== undefined && typeof path !== 'string')
    return reject('wrong-type', `field '${field}.path' must be a string, got ${typeName(path)}`, id);
  if (bytes === null || bytes === undefined) {
    if (path === null || path === undefined) return { ok: true, value: undefined };
    return reject(
      'missing-image',
      `field '${field}.bytes' is null: image '${path}' is not embedded in the file`,
      id,
    );
  }
  if (!(bytes instanceof Uint8Array))
    return reject('wrong-type', `field '${field}.bytes' must be binary, got ${typeName(bytes)}`, id);
  return { ok: true, value: typeof path === 'string' && path !== '' ? { bytes, path } : { bytes } };
}

function missingRequired(handle: ParquetFileHandle, family: ParquetFamily): string[] {
  const present = new Set(handle.columns);
  return family.columns.filter((c) => c.required && !present.has(c.name)).map((c) => c.name);
}

function assertColumns(handle: ParquetFileHandle, family: ParquetFamily): void {
  const missing = missingRequired(handle, family);
  if (missing.length > 0) {
    throw new SourceFileError(
      handle.uri,
      `missing required column${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m}'`).join(', ')} ` +
        `for format ${family.format} (file has: ${handle.columns.join(', ') || 'no columns'})`,
    );
  }
}

/** Cut a file's row groups into runs of about `target` rows; every group lands in exactly one run. */
export function cutRowGroups(
  groupRows: number[],
  target: number,
): { start: number; end: number; records: number }[] {
  const out: { start: number; end: number; records: number }[] = [];
  let start = 0;
  let records = 0;
  for (let g = 0; g < groupRows.length; g++) {
    records += groupRows[g];
    if (records >= target) {
      out.push({ start, end: g + 1, records });
      start = g + 1;
      records = 0;
    }
  }
  if (start < groupRows.length) out.push({ start, end: groupRows.length, records });
  return out;
}

/** A SourceReader for one parquet family. */
export function parquetReader(family: ParquetFamily): SourceReader {
  const columns = family.columns.map((c) => c.name);
  return {
    format: family.format,
    async plan(files: ObjectInfo[], options: PlanOptions): Promise<Partition[]> {
      const target = Math.max(1, options.targetRecords ?? DEFAULT_TARGET_RECORDS);
      const out: Partition[] = [];
      for (const file of files) {
        const handle = await openParquet(file.uri, file.size);
        assertColumns(handle, family);
        for (const cut of cutRowGroups(
          handle.rowGroups.map((g) => g.numRows),
          target,
        )) {
          out.push({
            format: family.format,
            uri: file.uri,
            kind: 'row-groups',
            start: cut.start,
            end: cut.end,
            records: cut.records,
            fileSize: file.size,
          });
        }
      }
      return out;
    },
    async *read(partition: Partition): AsyncIterable<ReadItem> {
      if (partition.kind !== 'row-groups') {
        throw new SourceFileError(
          partition.uri,
          `${family.format} reads row-group partitions, got '${partition.kind}'`,
        );
      }
      const handle = await openParquet(partition.uri);
      if (handle.size !== partition.fileSize) {
        throw new SourceFileError(
          partition.uri,
          `file changed since it was planned (${handle.size} bytes now, ${partition.fileSize} when planned)`,
        );
      }
      if (partition.end > handle.rowGroups.length) {
        throw new SourceFileError(
          partition.uri,
          `partition asks for row groups [${partition.start}, ${partition.end}) but the file has ${handle.rowGroups.length}`,
        );
      }
      assertColumns(handle, family);
      const source = family.sourceOf(partition.uri);
      for await (const { group, rows } of readRowGroups(handle, {
        start: partition.start,
        end: partition.end,
        columns,
      })) {
        for (let i = 0; i < rows.length; i++) {
          const row = group.rowStart + i;
          const origin = `${partition.uri}#row=${row}`;
          const result = family.toRecord(rows[i], { uri: partition.uri, row });
          if (result.ok) {
            const record: RawRecord = {
              id: result.id,
              source,
              origin,
              images: result.images,
              conversations: result.conversations,
              meta: result.meta,
            };
            yield { kind: 'record', record };
          } else {
            const record: QuarantineRecord = {
              origin,
              source,
              stage: 'read',
              reason: result.reason,
              message: result.message,
            };
            if (result.id !== undefined) record.id = result.id;
            yield { kind: 'quarantine', record };
          }
        }
        // Let go of the group's rows before the next group is decoded.
        rows.length = 0;
      }
    },
  };
}

/**
 * The row shape LLaVA-ReCap and LLaVA-OneVision share: `id`, `image` (HF Image), `conversations`, `data_source`.
 * `imageRequired`: ReCap rows are all image captions; OneVision rows may be text-only (null image).
 */
export function imageConversationRow(
  row: Record<string, unknown>,
  options: { imageRequired: boolean },
): RowResult {
  const id = checkId(row.id);
  if (!id.ok) return id;
  const image = checkImage(row.image, 'image', id.value);
  if (!image.ok) return image;
  if (image.value === undefined && options.imageRequired)
    return reject('missing-field', "field 'image' is missing", id.value);
  const conversations = checkConversations(row.conversations, id.value);
  if (!conversations.ok) return conversations;
  const dataSource = checkOptionalString(row.data_source, 'data_source', id.value);
  if (!dataSource.ok) return dataSource;
  return {
    ok: true,
    id: id.value,
    images: image.value ? [image.value] : [],
    conversations: conversations.value,
    meta: dataSource.value === undefined ? {} : { data_source: dataSource.value },
  };
}
