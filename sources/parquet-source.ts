// The shared machinery of the parquet families (LLaVA-ReCap, LLaVA-OneVision, DocMatix): plan by footers into
// partitions of whole row groups, read one row group at a time with only the needed columns, one item per row.
import { SourceFileError } from '../core/errors.ts';
import { openParquet, type ParquetFileHandle, readRowGroups } from '../core/parquet/read.ts';
import type { QuarantineReason, QuarantineRecord } from '../core/quarantine.ts';
import type { RawImage, RawRecord, RawTurn } from '../core/schema.ts';
import { basenameUri, dirnameUri, type ObjectInfo } from '../core/storage/index.ts';
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
  | { ok: false; reason: QuarantineReason; message: string; id?: string };

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

export function reject(reason: QuarantineReason, message: string, id?: string): RowResult {
  return id === undefined ? { ok: false, reason, message } : { ok: false, reason, message, id };
}

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (v instanceof Uint8Array) return 'bytes';
  if (Array.isArray(v)) return 'array';
  return typeof v;
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
 * Ids are strings in the HF releases; integer ids (some re-exports) are accepted as their decimal text.
 * Returns the id, or a rejection.
 */
export function checkId(value: unknown): { ok: true; id: string } | { ok: false; result: RowResult } {
  if (value === null || value === undefined || value === '') {
    return { ok: false, result: reject('missing-field', "field 'id' is missing") };
  }
  if (typeof value === 'string') return { ok: true, id: value };
  if (typeof value === 'bigint' || (typeof value === 'number' && Number.isInteger(value))) {
    return { ok: true, id: String(value) };
  }
  return { ok: false, result: reject('wrong-type', `field 'id' must be a string, got ${typeName(value)}`) };
}

/**
 * A Hugging Face `Image` value (`struct<bytes, path>`) at `field`. `undefined` when the value is null or has
 * neither bytes nor path (no image); else the image or a rejection.
 */
export function checkImage(
  value: unknown,
  field: string,
  id: string | undefined,
): { ok: true; image: RawImage | undefined } | { ok: false; result: RowResult } {
  if (value === null || value === undefined) return { ok: true, image: undefined };
  if (typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
    return {
      ok: false,
      result: reject(
        'wrong-type',
        `field '${field}' must be an image struct {bytes, path}, got ${typeName(value)}`,
        id,
      ),
    };
  }
  const { bytes, path } = value as { bytes?: unknown; path?: unknown };
  if (path !== null && path !== undefined && typeof path !== 'string') {
    return {
      ok: false,
      result: reject('wrong-type', `field '${field}.path' must be a string, got ${typeName(path)}`, id),
    };
  }
  if (bytes === null || bytes === undefined) {
    if (path === null || path === undefined) return { ok: true, image: undefined };
    return {
      ok: false,
      result: reject(
        'missing-image',
        `field '${field}.bytes' is null: image '${path}' is not embedded in the file`,
        id,
      ),
    };
  }
  if (!(bytes instanceof Uint8Array)) {
    return {
      ok: false,
      result: reject('wrong-type', `field '${field}.bytes' must be binary, got ${typeName(bytes)}`, id),
    };
  }
  return { ok: true, image: typeof path === 'string' && path !== '' ? { bytes, path } : { bytes } };
}

/** LLaVA `conversations`: a list of {from, value} strings. */
export function checkConversations(
  value: unknown,
  id: string,
): { ok: true; turns: RawTurn[] } | { ok: false; result: RowResult } {
  const fail = (reason: QuarantineReason, message: string) => ({
    ok: false as const,
    result: reject(reason, message, id),
  });
  if (value === null || value === undefined) return fail('missing-field', "field 'conversations' is missing");
  if (!Array.isArray(value))
    return fail('wrong-type', `field 'conversations' must be a list, got ${typeName(value)}`);
  const turns: RawTurn[] = [];
  for (let t = 0; t < value.length; t++) {
    const turn: unknown = value[t];
    if (typeof turn !== 'object' || turn === null || Array.isArray(turn) || turn instanceof Uint8Array) {
      return fail(
        turn === null ? 'missing-field' : 'wrong-type',
        `field 'conversations[${t}]' must be a {from, value} struct, got ${typeName(turn)}`,
      );
    }
    const { from, value: text } = turn as { from?: unknown; value?: unknown };
    if (from === null || from === undefined)
      return fail('missing-field', `field 'conversations[${t}].from' is missing`);
    if (text === null || text === undefined)
      return fail('missing-field', `field 'conversations[${t}].value' is missing`);
    if (typeof from !== 'string') {
      return fail('wrong-type', `field 'conversations[${t}].from' must be a string, got ${typeName(from)}`);
    }
    if (typeof text !== 'string') {
      return fail('wrong-type', `field 'conversations[${t}].value' must be a string, got ${typeName(text)}`);
    }
    turns.push({ from, value: text });
  }
  return { ok: true, turns };
}

/** An optional string column kept in `meta` (absent or null: left out). */
export function checkOptionalString(
  value: unknown,
  field: string,
  id: string,
): { ok: true; value: string | undefined } | { ok: false; result: RowResult } {
  if (value === null || value === undefined) return { ok: true, value: undefined };
  if (typeof value !== 'string') {
    return {
      ok: false,
      result: reject('wrong-type', `field '${field}' must be a string, got ${typeName(value)}`, id),
    };
  }
  return { ok: true, value };
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
  if (!id.ok) return id.result;
  const image = checkImage(row.image, 'image', id.id);
  if (!image.ok) return image.result;
  if (image.image === undefined && options.imageRequired)
    return reject('missing-field', "field 'image' is missing", id.id);
  const conversations = checkConversations(row.conversations, id.id);
  if (!conversations.ok) return conversations.result;
  const dataSource = checkOptionalString(row.data_source, 'data_source', id.id);
  if (!dataSource.ok) return dataSource.result;
  return {
    ok: true,
    id: id.id,
    images: image.image ? [image.image] : [],
    conversations: conversations.turns,
    meta: dataSource.value === undefined ? {} : { data_source: dataSource.value },
  };
}
