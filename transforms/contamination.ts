// Benchmark decontamination: an index of evaluation sets (image perceptual hashes, hashed question n-grams) and the
// check a training sample goes through at ingest: contaminated when an image is within the set's max_distance of
// an evaluation image (LSH lookup, no scan) or its question shares an n-gram of `ngram` words with one.
import { createHash } from 'node:crypto';
import { hamming64, hammingLsh, hash64FromHex, tableKey, tablesForRecall } from '../core/lsh.ts';
import { normaliseWords } from '../core/minhash.ts';
import type { Turn } from '../core/schema.ts';

export interface EvalSetIndex {
  name: string;
  ngram: number;
  maxDistance: number;
  /** Evaluation records read, and those skipped (quarantined by the reader or an undecodable image). */
  records: number;
  skipped: number;
  /** Perceptual hashes (hex) of the set's images, sorted, unique. */
  images: string[];
  /** First 12 hex digits of sha256 of each question n-gram, sorted, unique. */
  ngrams: string[];
}

export interface ContaminationIndex {
  sets: EvalSetIndex[];
}

/** The question text of a conversation: the human turns, `<image>` placeholders removed. */
export function questionText(conversations: readonly Turn[]): string {
  return conversations
    .filter((t) => t.from === 'human')
    .map((t) => t.value.replaceAll('<image>', ' '))
    .join('\n');
}

/** Hashes of every n-word window of the normalised question text (none when it has fewer than n words). */
export function questionNgrams(conversations: readonly Turn[], n: number): Set<string> {
  const words = normaliseWords(questionText(conversations));
  const out = new Set<string>();
  for (let i = 0; i + n <= words.length; i++)
    out.add(
      createHash('sha256')
        .update(words.slice(i, i + n).join(' '))
        .digest('hex')
        .slice(0, 12),
    );
  return out;
}

const LSH_BITS = 16;

/** The first evaluation set a sample is contaminated by (spec order), or undefined when clean. */
export type ContaminationCheck = (
  conversations: readonly Turn[],
  imageHashes: readonly string[],
) => string | undefined;

export function contaminationChecker(index: ContaminationIndex): ContaminationCheck {
  const sets = index.sets.map((s) => {
    const hashes = s.images.map(hash64FromHex);
    const lsh = hammingLsh(0, LSH_BITS, tablesForRecall(s.maxDistance, LSH_BITS, 0.999));
    const tables = new Map<number, number[]>();
    for (const [i, h] of hashes.entries())
      for (let t = 0; t < lsh.tables; t++) {
        const k = t * 2 ** LSH_BITS + tableKey(lsh, t, h.hi, h.lo);
        const list = tables.get(k);
        if (list) list.push(i);
        else tables.set(k, [i]);
      }
    const nearImage = (hex: string): boolean => {
      const h = hash64FromHex(hex);
      for (let t = 0; t < lsh.tables; t++)
        for (const i of tables.get(t * 2 ** LSH_BITS + tableKey(lsh, t, h.hi, h.lo)) ?? [])
          if (hamming64(h.hi, h.lo, hashes[i].hi, hashes[i].lo) <= s.maxDistance) return true;
      return false;
    };
    return { name: s.name, ngram: s.ngram, ngrams: new Set(s.ngrams), nearImage };
  });
  return (conversations, imageHashes) => {
    for (const s of sets) {
      if (imageHashes.some((h) => s.nearImage(h))) return s.name;
      for (const g of questionNgrams(conversations, s.ngram)) if (s.ngrams.has(g)) return s.name;
    }
    return undefined;
  };
}
