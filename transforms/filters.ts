// Filters a spec can ask for. Each returns the name of the filter that drops a sample (counted under that name by
// the build), or undefined to keep it. Text filters run before image work; image-size filters after it.
import picomatch from 'picomatch';
import type { Turn } from '../core/schema.ts';
import type { FilterName, FilterOptions } from './component-options.ts';
import { IMAGE_TOKEN } from './normalise.ts';

/** Image size as the source has it (after EXIF orientation, before downscaling). */
export interface ImageSize {
  width: number;
  height: number;
}

/** Conversation text without the `<image>` placeholders: what the length filters measure. */
function textOf(turns: readonly Turn[]): string {
  return turns.map((t) => t.value.split(IMAGE_TOKEN).join('')).join('\n');
}

/** Characters counted as Unicode code points, so an emoji is one character and not two UTF-16 units. */
export function countChars(turns: readonly Turn[]): number {
  let n = 0;
  for (const _ of textOf(turns)) n++;
  return n;
}

// Word-ish pieces: letter runs (with combining marks), single digits, single CJK/kana/hangul characters, and any
// other non-space character. Modern BPE vocabularies (Qwen2, the LLM of FastVLM) split digits and CJK characters
// one each, and English averages about 4 characters per token.
const PIECE =
  /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]|\p{N}|[\p{L}\p{M}]+|[^\s]/gu;

/**
 * Estimated token count of the text, the same everywhere and without a tokenizer download: a letter run of
 * length L counts ceil(L / 4) tokens; every digit, CJK character and other symbol counts one. A coarse length
 * cap, not exact budgeting.
 */
export function estimateTokens(turns: readonly Turn[]): number {
  let n = 0;
  for (const m of textOf(turns).matchAll(PIECE)) n += Math.ceil(m[0].length / 4);
  return n;
}

function sourceMatcher(patterns: readonly string[]): (source: string) => boolean {
  const globs = patterns.map((p) => picomatch(p, { dot: true }));
  return (source) => patterns.includes(source) || globs.some((g) => g(source));
}

const matchers = new WeakMap<readonly string[], (source: string) => boolean>();
function matches(patterns: readonly string[], source: string): boolean {
  let m = matchers.get(patterns);
  if (!m) {
    m = sourceMatcher(patterns);
    matchers.set(patterns, m);
  }
  return m(source);
}

/** Filters decided by the text and the image count: run before any image is decoded. */
export function textFilter(
  sample: { source: string; conversations: readonly Turn[]; images: readonly unknown[] },
  filters: FilterOptions,
): FilterName | undefined {
  if (filters.include_sources && !matches(filters.include_sources, sample.source)) return 'include_sources';
  if (filters.exclude_sources && matches(filters.exclude_sources, sample.source)) return 'exclude_sources';
  if (filters.image_only && sample.images.length === 0) return 'image_only';
  if (filters.max_images !== undefined && sample.images.length > filters.max_images) return 'max_images';
  if (filters.max_chars !== undefined && countChars(sample.conversations) > filters.max_chars)
    return 'max_chars';
  if (filters.max_tokens !== undefined && estimateTokens(sample.conversations) > filters.max_tokens) {
    return 'max_tokens';
  }
  return undefined;
}

/** Filters on image sizes: a sample is dropped when any of its images fails. */
export function imageFilter(sizes: readonly ImageSize[], filters: FilterOptions): FilterName | undefined {
  for (const { width, height } of sizes) {
    const short = Math.min(width, height);
    const long = Math.max(width, height);
    if (filters.min_side !== undefined && short < filters.min_side) return 'min_side';
    if (filters.max_side !== undefined && long > filters.max_side) return 'max_side';
    if (filters.max_aspect !== undefined && long / short > filters.max_aspect) return 'max_aspect';
  }
  return undefined;
}
