// Exact-duplicate key of a sample: sha256 over its images' digests and its normalised conversation text.
// Which duplicate wins (the earliest component, ties by key) is decided by the build, not here.
import { createHash } from 'node:crypto';
import type { Turn } from '../core/schema.ts';

/** Versioned so a change of the key's definition can never silently match keys of the old one. */
const DEDUP_KEY_DOMAIN = 'mixforge.dedup/v1';

/**
 * `imageDigests` are the sha256 (hex) of each image's stored bytes, in order: the normalised image exactly as it
 * lands in the shard (the original bytes when nothing changed, else the re-encoded ones). Hashing stored bytes
 * rather than decoded pixels costs nothing extra and is exact for what the mixture holds; the same picture in two
 * different encodings is not caught (that is near-duplicate work, out of scope).
 * `conversations` should be the normalised source text, before any triplet rewrite: the triplet question is a
 * function of the sample id, so two copies of one (image, caption) pair under different ids would otherwise
 * never match.
 * The encoding is unambiguous (JSON of the parts), so no two different inputs share a preimage.
 */
export function dedupKey(imageDigests: readonly string[], conversations: readonly Turn[]): string {
  const text = JSON.stringify(conversations.map((t) => [t.from, t.value]));
  return createHash('sha256')
    .update(DEDUP_KEY_DOMAIN)
    .update('\u0000')
    .update(JSON.stringify(imageDigests))
    .update('\u0000')
    .update(text)
    .digest('hex');
}
