// Text MinHash for near-duplicate detection: normalised word shingles, one 32-bit bijective mix per permutation
// (its keys derived from the seed, so a signature depends only on the text and the seed), kept as 8-bit minimums.
import { keyedHash64 } from './keyed-hash.ts';

/** Permutations per signature: 128 one-byte minimums, 128 bytes a sample. */
export const MINHASH_PERMUTATIONS = 128;

/** Lower-case (NFKC), punctuation to spaces, split on whitespace: edits of case, spacing and punctuation vanish. */
export function normaliseWords(text: string): string[] {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .split(' ')
    .filter((w) => w.length > 0);
}

/** The distinct n-word shingles of a text (a shorter text is one shingle of all its words; none when empty). */
export function shingles(text: string, n: number): Set<string> {
  const words = normaliseWords(text);
  const out = new Set<string>();
  if (words.length === 0) return out;
  if (words.length <= n) out.add(words.join(' '));
  for (let i = 0; i + n <= words.length; i++) out.add(words.slice(i, i + n).join(' '));
  return out;
}

/** murmur3's 32-bit finaliser: a bijection on 32-bit integers with full avalanche. */
function fmix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over UTF-16 code units, then mixed: the 32-bit hash of one shingle. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

const familyCache = new Map<string, Uint32Array>();

/** Per permutation, the two 32-bit keys of h_i(x) = fmix32(fmix32(x ^ a_i) ^ b_i), from (seed, "minhash", i). */
function family(seed: number | string): Uint32Array {
  const k = String(seed);
  let f = familyCache.get(k);
  if (!f) {
    f = new Uint32Array(2 * MINHASH_PERMUTATIONS);
    for (let i = 0; i < MINHASH_PERMUTATIONS; i++) {
      const h = keyedHash64(seed, 'minhash', String(i));
      f[2 * i] = Number(h >> 32n);
      f[2 * i + 1] = Number(h & 0xffffffffn);
    }
    familyCache.set(k, f);
  }
  return f;
}

/**
 * The MinHash signature of a text: for each permutation the low byte of the minimum mixed shingle hash ("b-bit
 * MinHash", Li & König). Two texts agree in a byte with probability J + (1 − J)/256 for Jaccard similarity J.
 * An empty text gets all-zero bytes (and is never banded: see textBandKeys).
 */
export function minhashSignature(text: string, ngram: number, seed: number | string): Uint8Array {
  const f = family(seed);
  const mins = new Uint32Array(MINHASH_PERMUTATIONS).fill(0xffffffff);
  const sh = shingles(text, ngram);
  for (const s of sh) {
    const x = hashString(s);
    for (let i = 0; i < MINHASH_PERMUTATIONS; i++) {
      const v = fmix32(fmix32(x ^ f[2 * i]) ^ f[2 * i + 1]);
      if (v < mins[i]) mins[i] = v;
    }
  }
  const out = new Uint8Array(MINHASH_PERMUTATIONS);
  if (sh.size > 0) for (let i = 0; i < MINHASH_PERMUTATIONS; i++) out[i] = mins[i] & 0xff;
  return out;
}

/** The Jaccard similarity two b-bit signatures estimate: matching fraction, corrected for chance byte matches. */
export function estimatedJaccard(a: Uint8Array, b: Uint8Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  const p = same / a.length;
  return Math.max(0, (p - 1 / 256) / (1 - 1 / 256));
}

/** The exact Jaccard similarity of two shingle sets (tests and benchmarks). */
export function jaccard(a: Set<string>, b: Set<string>): number {
  if (a.size === 0 && b.size === 0) return 1;
  let inter = 0;
  for (const s of a) if (b.has(s)) inter++;
  return inter / (a.size + b.size - inter);
}
