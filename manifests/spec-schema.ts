// The mixture spec's schema (strict zod): sources, components, take/repeat, output and image options, with the
// types the build reads. Loading (YAML, env, --set) is in spec.ts; error wording in spec-errors.ts.
import { z } from 'zod';
import { canonicalHash } from '../core/canonical-json.ts';
import { SOURCE_FORMATS } from '../sources/types.ts';
import { FilterOptionsSchema, ImageOptionsSchema, TRANSFORM_KINDS } from '../transforms/component-options.ts';

export const COMPRESSIONS = ['zstd', 'snappy', 'gzip', 'none'] as const;

const SourceSchema = z.strictObject({
  format: z.enum(SOURCE_FORMATS),
  uris: z
    .array(z.string().min(1, 'expected a non-empty URI or glob'))
    .min(1, 'expected at least one URI or glob'),
  /**
   * Where referenced images live (json formats: paths in records; parquet formats: image structs that carry a
   * `path` but no bytes). A folder, an s3:// prefix, or a .zip/.tar archive.
   */
  image_root: z.string().min(1, 'expected a non-empty folder, s3:// prefix or archive').optional(),
  /** `derive`: number records `<file stem>/<position>` instead of reading their `id` (files without ids). */
  ids: z.enum(['derive']).optional(),
});

const TakeSchema = z
  .strictObject({
    count: z.int().positive('expected a positive number of samples').optional(),
    fraction: z
      .number()
      .gt(0, 'expected a fraction in (0, 1]')
      .lte(1, 'expected a fraction in (0, 1]')
      .optional(),
  })
  .superRefine((take, ctx) => {
    if ((take.count === undefined) === (take.fraction === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'expected exactly one of {count: N} or {fraction: f}' });
    }
  });

const ComponentSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9_-]+$/, 'expected a name of lowercase letters, digits, _ and -'),
  source: SourceSchema,
  // Defaults are filled in (rather than left absent) so that writing a default out does not change the spec hash.
  transform: z.enum(TRANSFORM_KINDS).default('none'),
  filters: FilterOptionsSchema.prefault({}),
  take: TakeSchema.optional(),
  repeat: z.int().min(1, 'expected at least 1 copy').default(1),
});

const OutputSchema = z.strictObject({
  shard_rows: z.int().positive('expected a positive number of rows'),
  compression: z.enum(COMPRESSIONS).default('zstd'),
  max_shard_bytes: z.int().positive('expected a positive number of bytes').optional(),
});

/**
 * Near-duplicate removal (docs/specs.md): two samples are near-duplicates when their texts are (MinHash Jaccard ≥
 * `text.threshold`) and their images are (the same count, each pair within `images.max_distance` bits of the 64-bit
 * perceptual hash). Clusters keep the earliest component's sample, then the smallest take key.
 */
const NearDedupSchema = z.strictObject({
  images: z
    .strictObject({
      max_distance: z.int().min(0, 'expected 0..32 bits').max(32, 'expected 0..32 bits').default(8),
    })
    .prefault({}),
  text: z
    .strictObject({
      threshold: z
        .number()
        .min(0, 'expected a Jaccard similarity in [0, 1]')
        .max(1, 'expected a Jaccard similarity in [0, 1]')
        .default(0.7),
      ngram: z.int().min(1, 'expected at least 1 word').max(16, 'expected at most 16 words').default(3),
      bands: z
        .int()
        .refine((b) => b > 0 && 128 % b === 0, 'expected a divisor of 128 (the MinHash permutations)')
        .default(32),
      of: z.enum(['conversation', 'assistant']).default('conversation'),
    })
    .prefault({}),
  scope: z.enum(['within', 'across']).default('across'),
});
export type NearDedupSpec = z.output<typeof NearDedupSchema>;

/**
 * An evaluation set to decontaminate against (docs/specs.md): read by the source readers; a training sample is
 * contaminated when an image is within `max_distance` bits of an evaluation image, or its question shares an
 * `ngram`-word n-gram with an evaluation question.
 */
const EvalSetSchema = SourceSchema.extend({
  name: z.string().regex(/^[a-z0-9_.-]+$/, 'expected a name of lowercase letters, digits, ., _ and -'),
  ngram: z.int().min(1, 'expected at least 1 word').default(13),
  max_distance: z.int().min(0, 'expected 0..32 bits').max(32, 'expected 0..32 bits').default(8),
});
export type EvalSetSpec = z.output<typeof EvalSetSchema>;

export const MixtureSpecSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'expected a name of letters, digits, ., _ and -'),
  description: z.string().optional(),
  seed: z.int().min(0, 'expected a seed ≥ 0'),
  output: OutputSchema,
  images: ImageOptionsSchema.prefault({}),
  // Optional and without a default: specs that do not use it keep their hash.
  near_dedup: NearDedupSchema.optional(),
  decontaminate: z
    .array(EvalSetSchema)
    .superRefine((sets, ctx) => {
      const seen = new Set<string>();
      sets.forEach((s, i) => {
        if (seen.has(s.name))
          ctx.addIssue({
            code: 'custom',
            path: [i, 'name'],
            message: `duplicate evaluation set name '${s.name}'`,
          });
        seen.add(s.name);
      });
    })
    .optional(),
  components: z
    .array(ComponentSchema)
    .min(1, 'expected at least one component')
    .superRefine((components, ctx) => {
      const first = new Map<string, number>();
      components.forEach((c, i) => {
        const j = first.get(c.name);
        if (j === undefined) first.set(c.name, i);
        else
          ctx.addIssue({
            code: 'custom',
            path: [i, 'name'],
            message: `duplicate component name '${c.name}' (also components[${j}])`,
          });
      });
    }),
});

export type MixtureSpec = z.output<typeof MixtureSpecSchema>;
export type ComponentSpec = MixtureSpec['components'][number];
export type TakeSpec = NonNullable<ComponentSpec['take']>;

/** How many of `n` candidates a component's `take` keeps (before `repeat`): count, round(fraction·n), or all. */
export function takeSize(take: ComponentSpec['take'], n: number): number {
  if (take?.count !== undefined) return Math.min(take.count, n);
  if (take?.fraction !== undefined) return Math.round(take.fraction * n);
  return n;
}

/** sha256 (hex) of the canonical JSON of a resolved, validated spec: what the manifest records. */
export function specHash(spec: MixtureSpec): string {
  return canonicalHash(spec);
}
