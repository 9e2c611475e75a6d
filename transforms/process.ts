// The per-sample pipeline the build runs on every raw record: normalise → (triplet) → validate → text filters →
// image normalisation → image filters → dedup key. Deterministic in (record, options, seed): any partitioning agrees.
import type { QuarantineRecord } from '../core/quarantine.ts';
import type { RawRecord, SampleImage } from '../core/schema.ts';
import type { ComponentTransformOptions, FilterName } from './component-options.ts';
import { dedupKey } from './dedup-key.ts';
import { imageFilter, textFilter } from './filters.ts';
import type { ImageChange } from './image-normalise.ts';
import type { ImageNormaliser } from './image-pool.ts';
import { type NearDupFields, type NearDupOptions, nearDupFields } from './near-dup-fields.ts';
import { type NormalisedSample, normaliseRecord } from './normalise.ts';
import { makeTriplet } from './triplet.ts';
import { validateRecord } from './validate.ts';

export interface ProcessContext {
  /** Component name: prefixes every id (`<component>/<source id>`). */
  component: string;
  options: ComponentTransformOptions;
  /** Where image work runs: an ImagePool (worker threads) or inlineImageNormaliser. */
  images: ImageNormaliser;
  /** Set when the spec asks for near-duplicate removal: the kept outcome then carries its hashes. */
  nearDup?: NearDupOptions;
  /** Compute each image's perceptual hash (near_dedup, decontaminate): kept outcomes carry `imageHashes`. */
  hashImages?: boolean;
}

export type ProcessOutcome =
  | {
      kind: 'kept';
      sample: NormalisedSample;
      /** Exact-duplicate key (hex sha256), see transforms/dedup-key.ts. */
      dedupKey: string;
      /** sha256 (hex) of each stored image's bytes, in image order. */
      imageDigests: string[];
      /** Per image, why it was re-encoded (empty: original bytes kept). */
      imageChanges: ImageChange[][];
      /** Perceptual hash (hex) per image, when ctx.hashImages or ctx.nearDup is set. */
      imageHashes?: string[];
      /** Perceptual hashes and text signature, when ctx.nearDup is set. */
      nearDup?: NearDupFields;
    }
  | { kind: 'filtered'; filter: FilterName; id: string; source: string; origin: string }
  | { kind: 'quarantine'; record: QuarantineRecord };

function isQuarantine(x: object): x is QuarantineRecord {
  return 'reason' in x && 'stage' in x;
}

export async function processRecord(raw: RawRecord, ctx: ProcessContext): Promise<ProcessOutcome> {
  const { options } = ctx;
  const normalised = normaliseRecord(raw, ctx.component);
  if (isQuarantine(normalised)) return { kind: 'quarantine', record: normalised };
  // The dedup key hashes the source's text, not the triplet rewrite (whose question depends on the id).
  const sourceText = normalised.conversations;
  const record = options.transform === 'triplet' ? makeTriplet(normalised, options.seed) : normalised;
  if (isQuarantine(record)) return { kind: 'quarantine', record };
  const invalid = validateRecord(record);
  if (invalid) return { kind: 'quarantine', record: invalid };
  const filtered = (filter: FilterName): ProcessOutcome => ({
    kind: 'filtered',
    filter,
    id: record.id,
    source: record.source,
    origin: record.origin,
  });
  const textDrop = textFilter(record, options.filters);
  if (textDrop) return filtered(textDrop);

  const outcomes = await Promise.all(
    record.images.map((im) =>
      ctx.images.normalise(
        im.bytes,
        ctx.nearDup || ctx.hashImages ? { ...options.images, perceptualHash: true } : options.images,
      ),
    ),
  );
  const images: SampleImage[] = [];
  const imageDigests: string[] = [];
  const imageChanges: ImageChange[][] = [];
  const sizes: { width: number; height: number }[] = [];
  const hashes: (string | undefined)[] = [];
  for (const [i, o] of outcomes.entries()) {
    if (!o.ok) {
      const path = record.images[i].path;
      const which = `image ${i}${path ? ` (${path})` : ''}`;
      return {
        kind: 'quarantine',
        record: {
          origin: record.origin,
          source: record.source,
          stage: 'image',
          reason: o.reason,
          message: `${which}: ${o.message}`,
          id: record.id,
        },
      };
    }
    images.push(o.value.image);
    imageDigests.push(o.value.sha256);
    imageChanges.push(o.value.changes);
    sizes.push({ width: o.value.sourceWidth, height: o.value.sourceHeight });
    hashes.push(o.value.perceptualHash);
  }
  const imageDrop = imageFilter(sizes, options.filters);
  if (imageDrop) return filtered(imageDrop);

  return {
    kind: 'kept',
    sample: {
      id: record.id,
      source: record.source,
      images,
      conversations: record.conversations,
      origin: record.origin,
      metadata: record.metadata,
    },
    dedupKey: dedupKey(imageDigests, sourceText),
    imageDigests,
    imageChanges,
    // Like the dedup key, the source's text (not the triplet rewrite, whose question depends on the id).
    ...(ctx.nearDup || ctx.hashImages ? { imageHashes: hashes.map((h) => h ?? '') } : {}),
    ...(ctx.nearDup ? { nearDup: nearDupFields(hashes, sourceText, ctx.nearDup) } : {}),
  };
}
