// Per-component transform options as zod schemas, snake_case as in the mixture spec YAML (the spec embeds them).
// Parsing `{}` gives every default, so a component without `filters:` or a spec without `images:` is valid.
import { z } from 'zod';

export const TRANSFORM_KINDS = ['triplet', 'none'] as const;
export type TransformKind = (typeof TRANSFORM_KINDS)[number];

/** How an animated (multi-frame) image is treated: keep its first frame, or quarantine it as `image-animated`. */
export const ANIMATED_POLICIES = ['first-frame', 'reject'] as const;
export type AnimatedPolicy = (typeof ANIMATED_POLICIES)[number];

/** Output encodings for images that had to be re-encoded. */
export const REENCODE_FORMATS = ['jpeg', 'png'] as const;

/**
 * Filters a component can ask for. A sample a filter drops is counted under the filter's name (the field name
 * here), never quarantined. Image-size filters look at each image as the source has it, after EXIF orientation
 * and before any downscale, so changing `images.max_side` does not change which samples a filter keeps.
 */
export const FilterOptionsSchema = z.strictObject({
  /** Drop text-only samples. */
  image_only: z.boolean().optional(),
  /** Drop samples with more than this many images (1 = single-image only). */
  max_images: z.int().min(0, 'expected a number of images ≥ 0').optional(),
  /** Drop samples with an image whose shorter side is below this (pixels). */
  min_side: z.int().positive('expected a positive number of pixels').optional(),
  /** Drop samples with an image whose longer side is above this (pixels). */
  max_side: z.int().positive('expected a positive number of pixels').optional(),
  /** Drop samples with an image whose long/short side ratio is above this. */
  max_aspect: z.number().min(1, 'expected an aspect ratio ≥ 1').optional(),
  /** Drop samples whose conversation text (all turns, `<image>` tokens excluded) has more characters. */
  max_chars: z.int().positive('expected a positive number of characters').optional(),
  /** Drop samples whose estimated text token count (see transforms/filters.ts) is above this. */
  max_tokens: z.int().positive('expected a positive number of tokens').optional(),
  /** Keep only samples whose `source` equals one of these or matches it as a glob (`llava-onevision/chart*`). */
  include_sources: z.array(z.string().min(1)).min(1, 'expected at least one source name or glob').optional(),
  /** Drop samples whose `source` equals one of these or matches it as a glob. */
  exclude_sources: z.array(z.string().min(1)).optional(),
});
export type FilterOptions = z.output<typeof FilterOptionsSchema>;
export type FilterName = keyof FilterOptions;
export const FILTER_NAMES = Object.keys(FilterOptionsSchema.shape) as FilterName[];

/** Image normalisation settings (spec-wide in a mixture spec: `images:`). */
export const ImageOptionsSchema = z.strictObject({
  /** Downscale (never upscale) so that neither side exceeds this. */
  max_side: z.int().min(16, 'expected a side of at least 16 pixels').default(2048),
  /** Quality of re-encoded JPEGs (only images that had to change are re-encoded). */
  jpeg_quality: z
    .int()
    .min(1, 'expected a quality in 1..100')
    .max(100, 'expected a quality in 1..100')
    .default(95),
  /** Encoding of re-encoded images: JPEG (default, as the seed stores photos) or lossless PNG. */
  reencode_format: z.enum(REENCODE_FORMATS).default('jpeg'),
  /** Animated GIF/WebP (any multi-frame input): keep the first frame, or quarantine as `image-animated`. */
  animated: z.enum(ANIMATED_POLICIES).default('first-frame'),
  /**
   * Decompression-bomb guard: inputs with more pixels are quarantined as `image-too-large` before decoding.
   * Default 89,478,485 (PIL's DecompressionBombWarning limit, ~9459²): ~270 MB of RGB per image in flight.
   */
  max_pixels: z.int().positive('expected a positive number of pixels').default(89_478_485),
  /**
   * Decoder strictness (sharp's `failOn`): `warning` quarantines any image libjpeg/libpng warns about (a corrupt
   * entropy stream decodes to garbage otherwise); `error` accepts images with recoverable damage, as PIL does
   * (e.g. "extraneous bytes before marker"), to match what PIL-based pipelines keep from real web crawls.
   */
  fail_on: z.enum(['warning', 'error']).default('warning'),
});
export type ImageOptions = z.output<typeof ImageOptionsSchema>;

/** The seed: every random choice is a keyed hash of (seed, purpose, id). */
export const SeedSchema = z.union([z.int().min(0, 'expected a seed ≥ 0'), z.string().min(1)]);
export type Seed = z.output<typeof SeedSchema>;

/**
 * Everything the per-sample pipeline needs for one component. In a mixture spec these fields are spread over the
 * component (`transform`, `filters`) and the spec (`images`, `seed`); `mixforge sources read --spec` reads this
 * shape directly.
 */
export const ComponentTransformOptionsSchema = z.strictObject({
  transform: z.enum(TRANSFORM_KINDS).default('none'),
  filters: FilterOptionsSchema.prefault({}),
  images: ImageOptionsSchema.prefault({}),
  seed: SeedSchema.default(0),
});
export type ComponentTransformOptions = z.output<typeof ComponentTransformOptionsSchema>;
