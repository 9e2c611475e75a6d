// The parquet-family reader (LLaVA-ReCap, LLaVA-OneVision, DocMatix, messages parquet): plan by footers into
// partitions of whole row groups, read one row group at a time, one item per row; extra columns become metadata.
import { SourceFileError } from '../core/errors.ts';
import { openParquet, type ParquetFileHandle, readRowGroups } from '../core/parquet/read.ts';
import type { QuarantineRecord } from '../core/quarantine.ts';
import type { RawImage, RawRecord, RawTurn } from '../core/schema.ts';
import { basenameUri, dirnameUri, type ObjectInfo } from '../core/storage/index.ts';
import { typeName } from '../core/type-name.ts';
import { otherModalityField, otherModalityToken, withSystemPrompt } from './conversation-shapes.ts';
import {
  type Checked,
  checkConversations,
  checkOptionalString,
  checkOwnId,
  isPlainObject,
  type Rejection,
  reject,
} from './field-checks.ts';
import { type ImageRoot, openImageRoot, readImage } from './image-root/index.ts';
import type { Partition, PlanOptions, ReadItem, ReadOptions, SourceFormat, SourceReader } from './types.ts';

/** Partitions aim at this many rows when the caller does not say (whole row groups, so often more). */
export const DEFAULT_TARGET_RECORDS = 10_000;

export interface ParquetColumn {
  name: string;
  /** A file without a required column cannot be read at all: SourceFileError naming file and column. */
  required: boolean;
}

/**
 * An image as a row holds it: embedded bytes, or only a `path` (Hugging Face `datasets` writes `bytes: null` for
 * images stored beside the file) that the reader resolves against the partition's image root.
 */
export type RowImage = RawImage | { bytes?: undefined; path: string; field: string };

/** What one row turns into: the record's fields, or the reason it is rejected. */
export type RowResult =
  | { ok: true; id: string; images: RowImage[]; conversations: RawTurn[]; meta: Record<string, unknown> }
  | Rejection;

export interface RowContext {
  uri: string;
  /** Index of the row in the file. */
  row: number;
  /** Number rows `<file stem>/<row>` instead of reading an `id` column (`ids: derive`). */
  deriveIds: boolean;
}

export interface ParquetFamily {
  format: SourceFormat;
  /** The columns the family reads; any other column of the file goes to the record's metadata. */
  columns: ParquetColumn[];
  /** `family/subset` of the records of the file at `uri`, or of one `row` of it (as decoded, checked or not). */
  sourceOf(uri: string, row?: Record<string, unknown>): string;
  /** Check one row (values as hyparquet decodes them: strings, Uint8Array, arrays, objects, null). */
  toRecord(row: Record<string, unknown>, ctx: RowContext): RowResult;
}

/**
 * The row's id: its `id` column, or `<file stem>/<row>` when the source derives ids. A missing id says how to
 * derive them.
 */
export function rowId(value: unknown, ctx: RowContext): Checked<string> {
  if (ctx.deriveIds) return { ok: true, value: derivedRowId(ctx) };
  return checkOwnId(value);
}

/** `<file stem>/<row>` (`train-00000-of-00001/42`): stable as long as the file is. */
export function derivedRowId(ctx: RowContext): string {
  return `${fileStem(ctx.uri)}/${ctx.row}`;
}

/** A decoded parquet value as JSON: int64 as a number when exact (else its decimal text), binary as its size. */
export function jsonValue(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : String(v);
  if (v instanceof Uint8Array) return `<${v.byteLength} bytes>`;
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  if (Array.isArray(v)) return v.map(jsonValue);
  if (isPlainObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonValue(x)]));
  return v;
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
 * neither bytes nor path (no image); a path without bytes is left for the reader to resolve.
 */
export function checkImage(
  value: unknown,
  field: string,
  id: string | undefined,
): Checked<RowImage | undefined> {
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
    if (path === null || path === undefined || path === '') return { ok: true, value: undefined };
    return { ok: true, value: { path, field: `${field}.bytes` } };
  }
  if (!(bytes instanceof Uint8Array))
    return reject('wrong-type', `field '${field}.bytes' must be binary, got ${typeName(bytes)}`, id);
  return { ok: true, value: typeof path === 'string' && path !== '' ? { bytes, path } : { bytes } };
}

/** Required columns the file lacks; `id` is not required when ids are derived. */
function missingRequired(handle: ParquetFileHandle, family: ParquetFamily, deriveIds: boolean): string[] {
  const present = new Set(handle.columns);
  return family.columns
    .filter((c) => c.required && !present.has(c.name) && !(deriveIds && c.name === 'id'))
    .map((c) => c.name);
}

function assertColumns(handle: ParquetFileHandle, family: ParquetFamily, deriveIds: boolean): void {
  const missing = missingRequired(handle, family, deriveIds);
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
  const known = new Set(family.columns.map((c) => c.name));
  return {
    format: family.format,
    async plan(files: ObjectInfo[], options: PlanOptions): Promise<Partition[]> {
      const target = Math.max(1, options.targetRecords ?? DEFAULT_TARGET_RECORDS);
      const out: Partition[] = [];
      for (const file of files) {
        const handle = await openParquet(file.uri, file.size);
        assertColumns(handle, family, options.ids === 'derive');
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
            ...(options.imageRoot !== undefined ? { imageRoot: options.imageRoot } : {}),
            ...(options.ids === 'derive' ? { deriveIds: true } : {}),
          });
        }
      }
      return out;
    },
    async *read(partition: Partition, options?: ReadOptions): AsyncIterable<ReadItem> {
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
      assertColumns(handle, family, partition.deriveIds === true);
      const images = new PathImages(partition.imageRoot);
      const ctx = { uri: partition.uri, row: 0, deriveIds: partition.deriveIds === true };
      for await (const { group, rows, release } of readRowGroups(handle, {
        start: partition.start,
        end: partition.end,
        // Every column: the ones the family does not read are kept as metadata.
        columns: handle.columns,
        recycle: options?.recycle === true,
      })) {
        const releaseRow = release && countdown(rows.length, release);
        for (let i = 0; i < rows.length; i++) {
          ctx.row = group.rowStart + i;
          const origin = `${partition.uri}#row=${ctx.row}`;
          const result = checkRow(family, rows[i], ctx, known);
          const source = family.sourceOf(partition.uri, rows[i]);
          const loaded = result.ok ? await images.load(result.images, result.id) : result;
          if (result.ok && loaded.ok) {
            const record: RawRecord = {
              id: result.id,
              source,
              origin,
              images: loaded.value,
              conversations: result.conversations,
              meta: result.meta,
            };
            yield releaseRow ? { kind: 'record', record, release: releaseRow() } : { kind: 'record', record };
          } else if (!loaded.ok) {
            const record: QuarantineRecord = {
              origin,
              source,
              stage: 'read',
              reason: loaded.reason,
              message: loaded.message,
            };
            if (loaded.id !== undefined) record.id = loaded.id;
            yield releaseRow
              ? { kind: 'quarantine', record, release: releaseRow() }
              : { kind: 'quarantine', record };
          }
        }
        // Let go of the group's rows before the next group is decoded.
        rows.length = 0;
      }
    },
  };
}

/**
 * Per-item release functions for `count` items that share one memory: `release` runs once every item's function
 * has been called; calling one item's function again changes nothing.
 */
function countdown(count: number, release: () => void): () => () => void {
  let left = count;
  return () => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--left === 0) release();
    };
  };
}

/** The family's checks, after the modality check every family shares, with the unread columns as metadata. */
function checkRow(
  family: ParquetFamily,
  row: Record<string, unknown>,
  ctx: RowContext,
  known: ReadonlySet<string>,
): RowResult {
  const modality = otherModalityField(row, typeof row.id === 'string' ? row.id : undefined);
  if (!modality.ok) return modality;
  const result = family.toRecord(row, ctx);
  if (!result.ok) return result;
  const meta = { ...result.meta };
  for (const [key, value] of Object.entries(row)) {
    // With derived ids the row's own id is kept as metadata, as the JSON readers keep it.
    const unread = !known.has(key) || (key === 'id' && ctx.deriveIds);
    if (unread && value !== null && value !== undefined) meta[key] = jsonValue(value);
  }
  return { ...result, meta };
}

/** Resolves path-only images of a partition against its image root (opened on first use), with the safe-path rules. */
class PathImages {
  private root: Promise<ImageRoot> | undefined;

  constructor(private readonly rootUri: string | undefined) {}

  async load(images: RowImage[], id: string): Promise<Checked<RawImage[]>> {
    if (images.every((im) => im.bytes !== undefined)) return { ok: true, value: images as RawImage[] };
    const out: RawImage[] = [];
    for (const im of images) {
      if (im.bytes !== undefined) {
        out.push(im);
        continue;
      }
      if (this.rootUri === undefined) {
        return reject(
          'missing-image',
          `field '${im.field}' is null: image '${im.path}' is not embedded in the file (set the source's image_root to read it from a folder)`,
          id,
        );
      }
      this.root ??= openImageRoot(this.rootUri);
      const lookup = await readImage(await this.root, im.path);
      if (!lookup.found) return reject(lookup.reason, lookup.message, id);
      out.push({ bytes: lookup.bytes, path: im.path });
    }
    return { ok: true, value: out };
  }
}

/**
 * The row shape LLaVA-ReCap and LLaVA-OneVision share: `id`, `image` (HF Image), `conversations`, `data_source`.
 * `imageRequired`: ReCap rows are all image captions; OneVision rows may be text-only (null image).
 */
export function imageConversationRow(
  row: Record<string, unknown>,
  ctx: RowContext,
  options: { imageRequired: boolean },
): RowResult {
  const id = rowId(row.id, ctx);
  if (!id.ok) return id;
  const image = checkImage(row.image, 'image', id.value);
  if (!image.ok) return image;
  if (image.value === undefined && options.imageRequired)
    return reject('missing-field', "field 'image' is missing", id.value);
  const turns = checkConversations(row.conversations, id.value);
  if (!turns.ok) return turns;
  const conversations = withSystemPrompt(turns.value, row, id.value);
  if (!conversations.ok) return conversations;
  const token = otherModalityToken(conversations.value, id.value);
  if (!token.ok) return token;
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

/** The columns of the LLaVA-ReCap / LLaVA-OneVision row shape besides the image. */
export const IMAGE_CONVERSATION_COLUMNS: ParquetColumn[] = [
  { name: 'id', required: true },
  { name: 'conversations', required: true },
  { name: 'data_source', required: false },
  { name: 'system_prompt', required: false },
  { name: 'system', required: false },
];
