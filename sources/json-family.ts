// The JSON-family reader (LLaVA-Pretrain, the 665K mix, Cambrian, messages files): one record shape — {id, image(s)?,
// conversations | messages, system_prompt?, ...extras} with images by path — turned into RawRecords or quarantine.
import { MixforgeError } from '../core/errors.ts';
import type { QuarantineReason, QuarantineRecord } from '../core/quarantine.ts';
import type { RawImage, RawRecord, RawTurn } from '../core/schema.ts';
import { basenameUri, dirnameUri, type ObjectInfo } from '../core/storage/index.ts';
import { typeName } from '../core/type-name.ts';
import {
  checkMessages,
  otherModalityField,
  otherModalityToken,
  SYSTEM_PROMPT_FIELDS,
  withSystemPrompt,
} from './conversation-shapes.ts';
import {
  type Checked,
  checkConversations,
  checkOwnId,
  isPlainObject,
  type Rejection,
  reject,
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
  /** Turns as spelt, a `system_prompt` already made the leading system turn. */
  conversations: RawTurn[];
  /** Every other field of the record (the sample's metadata). */
  meta: Record<string, unknown>;
}

export type FieldCheck = { ok: true; fields: LlavaFields } | Rejection;

/** Fields the record shape consumes; everything else goes to `meta`. */
const SHAPE_FIELDS = new Set<string>([
  'id',
  'image',
  'images',
  'conversations',
  'messages',
  ...SYSTEM_PROMPT_FIELDS,
]);

/** `image` (a path or a list of paths, LLaVA) or `images` (a list of paths, LLaMA-Factory). */
function checkImagePaths(obj: Record<string, unknown>, id: string, requireImage: boolean): Checked<string[]> {
  const field = obj.image === undefined || obj.image === null ? 'images' : 'image';
  const image = obj[field];
  if (
    image === undefined ||
    image === null ||
    (field === 'images' && Array.isArray(image) && image.length === 0)
  ) {
    if (requireImage) return reject('missing-field', "field 'image' is missing", id);
    return { ok: true, value: [] };
  }
  if (typeof image === 'string') {
    if (image === '') return reject('wrong-type', `field '${field}' is an empty string`, id);
    return { ok: true, value: [image] };
  }
  if (Array.isArray(image) && image.length > 0 && image.every((p) => typeof p === 'string' && p !== '')) {
    return { ok: true, value: image as string[] };
  }
  return reject(
    'wrong-type',
    `field '${field}' must be a path or a non-empty list of paths, got ${typeName(image)}`,
    id,
  );
}

/**
 * Check the shape of one parsed record: `{id, image?, conversations, system_prompt?, ...}` (LLaVA, lmms-finetune,
 * LLaMA-Factory's sharegpt with `images` and `system`)
 * or `{id?, images?, messages, ...}` (LLaMA-Factory, OpenAI style). `id` may be a number in the real 665K file
 * (coerced to a string); with `derivedId` the record's id is that one (its own id, if any, goes to `meta`).
 * Video and audio records are refused as `unsupported-modality`.
 */
export function checkLlavaFields(
  value: unknown,
  options: { requireImage: boolean; derivedId?: string },
): FieldCheck {
  if (!isPlainObject(value))
    return reject('wrong-type', `record must be a JSON object, got ${typeName(value)}`);
  let id: string;
  if (options.derivedId !== undefined) id = options.derivedId;
  else {
    const own = checkOwnId(value.id);
    if (!own.ok) return own;
    id = own.value;
  }
  const modality = otherModalityField(value, id);
  if (!modality.ok) return modality;
  const imagePaths = checkImagePaths(value, id, options.requireImage);
  if (!imagePaths.ok) return imagePaths;

  const hasMessages = value.conversations === undefined && value.messages !== undefined;
  const turns = hasMessages ? checkMessages(value.messages, id) : checkConversations(value.conversations, id);
  if (!turns.ok) return turns;
  const conversations = withSystemPrompt(turns.value, value, id);
  if (!conversations.ok) return conversations;
  const token = otherModalityToken(conversations.value, id);
  if (!token.ok) return token;

  const meta: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (!SHAPE_FIELDS.has(key) || (key === 'id' && options.derivedId !== undefined)) meta[key] = value[key];
  }
  return { ok: true, fields: { id, imagePaths: imagePaths.value, conversations: conversations.value, meta } };
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
  /** Item index (json array) or line number (jsonl): with the file name, a derived id. */
  position: number;
  /** Raw JSON text of the record. */
  text: string;
}

export interface LlavaFamily {
  /** The family name used as the source of records whose subset is unknown (unparseable ones). */
  family: string;
  requireImage: boolean;
  /** Number records `<file stem>/<position>` instead of reading their `id` (the `ids: derive` source option). */
  deriveIds?: boolean;
  /** `family/subset` for a well-formed record. */
  sourceOf(fields: LlavaFields): string;
}

/** `<file stem>/<position>`: stable as long as the file is, like DocMatix's ids. */
function derivedId(located: LocatedText): string {
  const uri = located.origin.slice(0, located.origin.lastIndexOf('#'));
  return `${basenameUri(uri).replace(/\.(jsonl?|parquet)$/i, '')}/${located.position}`;
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
  const check = checkLlavaFields(value, {
    requireImage: family.requireImage,
    ...(family.deriveIds ? { derivedId: derivedId(located) } : {}),
  });
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
          if (options.ids === 'derive') partition.deriveIds = true;
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
                  position: el.index,
                  text: Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8'),
                };
              }
            })()
          : (async function* () {
              for await (const line of readJsonlLines(uri, range)) {
                // Blank lines separate nothing and are not records.
                if (line.text.trim() === '') continue;
                yield { origin: `${uri}#line=${line.line}`, position: line.line, text: line.text };
              }
            })();
      yield* readLlavaRecords(partition.deriveIds ? { ...spec, deriveIds: true } : spec, root, texts);
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
