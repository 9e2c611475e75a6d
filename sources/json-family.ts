// The LLaVA json families (LLaVA-Pretrain, the 665K mix, Cambrian) share one record shape — {id, image?,
// conversations, ...extras} with images referenced by path — so this turns one parsed value into a RawRecord
// (images loaded from an image root, in order, a few records in flight) or a quarantine record.
import { MixforgeError } from '../core/errors.ts';
import type { QuarantineReason, QuarantineRecord } from '../core/quarantine.ts';
import type { RawImage, RawRecord, RawTurn } from '../core/schema.ts';
import { dirnameUri, type ObjectInfo } from '../core/storage/index.ts';
import {
  checkConversations,
  checkId,
  isPlainObject,
  type Rejection,
  reject,
  typeName,
} from './field-checks.ts';
import type { ImageRoot } from './image-root/index.ts';
import { openImageRoot } from './image-root/index.ts';
import { checkImagePath } from './image-root/safe-path.ts';
import { planJsonArray, readJsonArrayElements } from './json-array.ts';
import { planJsonl, readJsonlLines } from './jsonl.ts';
import type { Partition, PlanOptions, ReadItem, SourceFormat, SourceReader } from './types.ts';

/** The fields of one LLaVA-style record before its images are loaded. */
export interface LlavaFields {
  id: string;
  imagePaths: string[];
  conversations: RawTurn[];
  meta: Record<string, unknown>;
}

export type FieldCheck = { ok: true; fields: LlavaFields } | Rejection;

const KNOWN_FIELDS = new Set(['id', 'image', 'conversations']);

/**
 * Check the shape of one parsed record. `id` may be a number in the real 665K file (coerced to a string);
 * `image` is a path, a list of paths, or absent/null for text-only records (unless `requireImage`).
 */
export function checkLlavaFields(value: unknown, options: { requireImage: boolean }): FieldCheck {
  if (!isPlainObject(value))
    return reject('wrong-type', `record must be a JSON object, got ${typeName(value)}`);
  const checkedId = checkId(value.id);
  if (!checkedId.ok) return checkedId;
  const id = checkedId.value;

  let imagePaths: string[];
  const image = value.image;
  if (image === undefined || image === null) {
    if (options.requireImage) return reject('missing-field', "field 'image' is missing", id);
    imagePaths = [];
  } else if (typeof image === 'string') {
    if (image === '') return reject('wrong-type', "field 'image' is an empty string", id);
    imagePaths = [image];
  } else if (
    Array.isArray(image) &&
    image.length > 0 &&
    image.every((p) => typeof p === 'string' && p !== '')
  ) {
    imagePaths = image as string[];
  } else {
    return reject(
      'wrong-type',
      `field 'image' must be a path or a non-empty list of paths, got ${typeName(image)}`,
      id,
    );
  }

  const conversations = checkConversations(value.conversations, id);
  if (!conversations.ok) return conversations;

  const meta: Record<string, unknown> = {};
  for (const key of Object.keys(value)) if (!KNOWN_FIELDS.has(key)) meta[key] = value[key];
  return { ok: true, fields: { id, imagePaths, conversations: conversations.value, meta } };
}

/** Load a record's images: every path is checked before any is read; the first failure wins. */
export async function loadImages(
  root: ImageRoot,
  paths: string[],
): Promise<{ ok: true; images: RawImage[] } | { ok: false; reason: QuarantineReason; message: string }> {
  const checked: string[] = [];
  for (const path of paths) {
    const check = checkImagePath(path);
    if (!check.safe) return { ok: false, reason: 'unsafe-image-path', message: check.message };
    checked.push(check.path);
  }
  const images: RawImage[] = [];
  for (let k = 0; k < checked.length; k++) {
    const lookup = await root.readChecked(checked[k]);
    if (!lookup.found) return { ok: false, reason: lookup.reason, message: lookup.message };
    images.push({ bytes: lookup.bytes, path: paths[k] });
  }
  return { ok: true, images };
}

/** One located element of an annotation file, not yet parsed. */
export interface LocatedText {
  origin: string;
  /** Raw JSON text of the record. */
  text: string;
}

export interface LlavaFamily {
  /** The family name used as the source of records whose subset is unknown (unparseable ones). */
  family: string;
  requireImage: boolean;
  /** `family/subset` for a well-formed record. */
  sourceOf(fields: LlavaFields): string;
}

/** Records whose images are being fetched at once: hides storage latency, bounds memory. */
const RECORDS_IN_FLIGHT = 16;

function quarantine(
  origin: string,
  source: string,
  reason: QuarantineReason,
  message: string,
  id: string | undefined,
): ReadItem {
  const record: QuarantineRecord = { origin, source, stage: 'read', reason, message };
  if (id !== undefined) record.id = id;
  return { kind: 'quarantine', record };
}

async function toItem(family: LlavaFamily, root: ImageRoot, located: LocatedText): Promise<ReadItem> {
  let value: unknown;
  try {
    value = JSON.parse(located.text);
  } catch (err) {
    return quarantine(
      located.origin,
      family.family,
      'unreadable-record',
      `invalid JSON: ${(err as Error).message}`,
      undefined,
    );
  }
  const check = checkLlavaFields(value, { requireImage: family.requireImage });
  if (!check.ok) return quarantine(located.origin, family.family, check.reason, check.message, check.id);
  const { fields } = check;
  const source = family.sourceOf(fields);
  const loaded = await loadImages(root, fields.imagePaths);
  if (!loaded.ok) return quarantine(located.origin, source, loaded.reason, loaded.message, fields.id);
  const record: RawRecord = {
    id: fields.id,
    source,
    origin: located.origin,
    images: loaded.images,
    conversations: fields.conversations,
    meta: fields.meta,
  };
  return { kind: 'record', record };
}

/**
 * Parse and load records in source order with up to RECORDS_IN_FLIGHT of them fetching images at once.
 * Source errors (SourceFileError from the file or the image root) propagate and end the read.
 */
export async function* readLlavaRecords(
  family: LlavaFamily,
  root: ImageRoot,
  texts: AsyncIterable<LocatedText>,
): AsyncGenerator<ReadItem> {
  const inFlight: Promise<ReadItem>[] = [];
  for await (const located of texts) {
    const item = toItem(family, root, located);
    // Rejections are observed when the item reaches the head; this only prevents an unhandled warning.
    item.catch(() => {});
    inFlight.push(item);
    if (inFlight.length >= RECORDS_IN_FLIGHT) yield await (inFlight.shift() as Promise<ReadItem>);
  }
  while (inFlight.length > 0) yield await (inFlight.shift() as Promise<ReadItem>);
}

/** Partitions aim at this many bytes of annotations when the caller does not say. */
export const DEFAULT_TARGET_BYTES = 64 << 20;

export interface LlavaReaderSpec extends LlavaFamily {
  format: SourceFormat;
  layout: 'json-array' | 'jsonl';
  /** The image root when none is given: by default the annotation file's folder. */
  defaultImageRoot?(file: ObjectInfo): Promise<string>;
}

/** A SourceReader for one LLaVA json family, over a json array or a jsonl file. */
export function llavaJsonReader(spec: LlavaReaderSpec): SourceReader {
  return {
    format: spec.format,
    async plan(files: ObjectInfo[], options: PlanOptions): Promise<Partition[]> {
      const target = options.targetBytes ?? DEFAULT_TARGET_BYTES;
      // Each record costs image work, so a file of small records is cut by count too: both cores get jobs.
      const records = options.targetRecords ?? Number.POSITIVE_INFINITY;
      const out: Partition[] = [];
      for (const file of files) {
        const imageRoot =
          options.imageRoot ??
          (spec.defaultImageRoot ? await spec.defaultImageRoot(file) : dirnameUri(file.uri));
        const cuts =
          spec.layout === 'json-array'
            ? (await planJsonArray(file, target, records)).map((c) => ({ ...c, records: c.items }))
            : (await planJsonl(file, target, records)).map((c) => ({ ...c, records: c.lines }));
        cuts.forEach((cut, k) => {
          const partition: Partition = {
            format: spec.format,
            uri: file.uri,
            kind: 'bytes',
            start: cut.start,
            end: k + 1 < cuts.length ? cuts[k + 1].start : file.size,
            imageRoot,
            fileSize: file.size,
            firstItem: cut.firstItem,
          };
          if (cut.records !== undefined) partition.records = cut.records;
          out.push(partition);
        });
      }
      return out;
    },
    async *read(partition: Partition): AsyncIterable<ReadItem> {
      if (partition.start > 0 && partition.firstItem === undefined) {
        // Without it every origin after the cut would carry a wrong item/line number.
        throw new MixforgeError(
          `${partition.uri}: a byte partition starting at ${partition.start} needs firstItem`,
        );
      }
      const root = await openImageRoot(partition.imageRoot ?? dirnameUri(partition.uri));
      const range = {
        start: partition.start,
        end: partition.end,
        firstItem: partition.firstItem ?? 0,
        fileSize: partition.fileSize,
      };
      const uri = partition.uri;
      const texts: AsyncIterable<LocatedText> =
        spec.layout === 'json-array'
          ? (async function* () {
              for await (const el of readJsonArrayElements(uri, range)) {
                const b = el.bytes;
                yield {
                  origin: `${uri}#item=${el.index}`,
                  text: Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8'),
                };
              }
            })()
          : (async function* () {
              for await (const line of readJsonlLines(uri, range)) {
                // Blank lines separate nothing and are not records.
                if (line.text.trim() === '') continue;
                yield { origin: `${uri}#line=${line.line}`, text: line.text };
              }
            })();
      yield* readLlavaRecords(spec, root, texts);
    },
  };
}

/**
 * The subset a relative image path names by its first folder (`coco/train2017/x.jpg` → `coco`): `root` for a
 * file directly under the image root, `unsafe` for a path that will be quarantined anyway.
 */
export function firstSegment(path: string): string {
  const check = checkImagePath(path);
  if (!check.safe) return 'unsafe';
  const slash = check.path.indexOf('/');
  return slash > 0 ? check.path.slice(0, slash) : 'root';
}
