// What near-duplicate detection keeps of a sample at ingest: its images' perceptual hashes and the MinHash signature
// of its text (the whole conversation or the assistant turns), both small and stored with the sample's keys.
import { createHash } from 'node:crypto';
import { MINHASH_PERMUTATIONS, minhashSignature } from '../core/minhash.ts';
import type { Turn } from '../core/schema.ts';

export interface NearDupOptions {
  ngram: number;
  of: 'conversation' | 'assistant';
  seed: number;
}

export interface NearDupFields {
  /** 64-bit perceptual hash (16 hex digits) of each stored image, in order. */
  images: string[];
  /** Base64 of the 128-byte MinHash signature of the text. */
  text: string;
  /** sha256 (first 16 hex digits) of the exact conversation: tells an image-only difference from a text one. */
  textDigest: string;
}

/** The text MinHash sees: turn values joined by newlines, `<image>` placeholders removed. */
export function nearDupText(conversations: readonly Turn[], of: NearDupOptions['of']): string {
  return conversations
    .filter((t) => of === 'conversation' || t.from === 'gpt')
    .map((t) => t.value.replaceAll('<image>', ' '))
    .join('\n');
}

export function nearDupFields(
  imageHashes: readonly (string | undefined)[],
  conversations: readonly Turn[],
  options: NearDupOptions,
): NearDupFields {
  const images = imageHashes.map((h, i) => {
    if (h === undefined) throw new Error(`image ${i} has no perceptual hash (near_dedup needs it at ingest)`);
    return h;
  });
  const sig = minhashSignature(nearDupText(conversations, options.of), options.ngram, options.seed);
  const exact = JSON.stringify(conversations.map((t) => [t.from, t.value]));
  const textDigest = createHash('sha256').update(exact).digest('hex').slice(0, 16);
  return { images, text: Buffer.from(sig).toString('base64'), textDigest };
}

export function signatureFromBase64(text: string): Uint8Array {
  const b = Buffer.from(text, 'base64');
  if (b.length !== MINHASH_PERMUTATIONS)
    throw new Error(`a MinHash signature has ${MINHASH_PERMUTATIONS} bytes, got ${b.length}`);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}
