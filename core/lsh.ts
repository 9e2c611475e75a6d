// Locality-sensitive hashing that finds near-duplicate candidates without comparing all pairs: bit-sampling
// tables for 64-bit image hashes (Hamming distance) and bands of MinHash signatures for text (Jaccard).
// Every table is a pure function of the seed, so any process finds the same candidates.
import { keyedHash64 } from './keyed-hash.ts';

/** A 64-bit hash as two unsigned 32-bit halves (typed-array friendly; bigint is slow in hot loops). */
export interface Hash64 {
  hi: number;
  lo: number;
}

export function hash64FromHex(hex: string): Hash64 {
  if (!/^[0-9a-f]{16}$/.test(hex)) throw new RangeError(`not a 64-bit hex hash: '${hex}'`);
  return { hi: Number.parseInt(hex.slice(0, 8), 16), lo: Number.parseInt(hex.slice(8), 16) };
}

function popcount32(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/** Bits that differ between two 64-bit hashes given as halves. */
export function hamming64(aHi: number, aLo: number, bHi: number, bLo: number): number {
  return popcount32((aHi ^ bHi) >>> 0) + popcount32((aLo ^ bLo) >>> 0);
}

/**
 * Bit-sampling LSH for Hamming distance: `tables` keys of `bits` hash bits each, the bits of table t drawn by a
 * keyed shuffle of (seed, t). Two hashes at distance d share table t's key with probability C(64−d, k)/C(64, k).
 * A key is computed with 8 byte lookups (each byte's sampled bits, already moved to their key positions).
 */
export interface HammingLsh {
  bits: number;
  tables: number;
  /** [table][byte 0..7 of the hash, most significant first][byte value] → key bits. */
  lookup: Uint32Array;
}

export function hammingLsh(seed: number | string, bits: number, tables: number): HammingLsh {
  if (!Number.isInteger(bits) || bits < 1 || bits > 30)
    throw new RangeError(`bits must be 1..30, got ${bits}`);
  if (!Number.isInteger(tables) || tables < 1) throw new RangeError(`tables must be ≥ 1, got ${tables}`);
  const lookup = new Uint32Array(tables * 8 * 256);
  for (let t = 0; t < tables; t++) {
    // A keyed Fisher–Yates shuffle of the 64 bit positions; the first `bits` are this table's.
    const pos = Array.from({ length: 64 }, (_, i) => i);
    for (let i = 63; i > 0; i--) {
      const j = Number(keyedHash64(seed, `lsh-bits:${t}`, String(i)) % BigInt(i + 1));
      [pos[i], pos[j]] = [pos[j], pos[i]];
    }
    for (let k = 0; k < bits; k++) {
      const p = pos[k]; // bit p of the hash, 0 = most significant
      const byte = p >> 3;
      const mask = 0x80 >> (p & 7);
      for (let v = 0; v < 256; v++) if (v & mask) lookup[(t * 8 + byte) * 256 + v] |= 1 << k;
    }
  }
  return { bits, tables, lookup };
}

/** Table t's key of a hash. */
export function tableKey(lsh: HammingLsh, t: number, hi: number, lo: number): number {
  const L = lsh.lookup;
  const b = t * 2048;
  return (
    (L[b + (hi >>> 24)] |
      L[b + 256 + ((hi >>> 16) & 255)] |
      L[b + 512 + ((hi >>> 8) & 255)] |
      L[b + 768 + (hi & 255)] |
      L[b + 1024 + (lo >>> 24)] |
      L[b + 1280 + ((lo >>> 16) & 255)] |
      L[b + 1536 + ((lo >>> 8) & 255)] |
      L[b + 1792 + (lo & 255)]) >>>
    0
  );
}

/** Probability that two hashes at Hamming distance d share at least one of the tables' keys. */
export function hammingRecall(d: number, bits: number, tables: number): number {
  let p = 1;
  for (let i = 0; i < bits; i++) p *= (64 - d - i) / (64 - i);
  return 1 - (1 - Math.max(0, p)) ** tables;
}

/** The fewest tables of `bits` bits that find a pair at distance maxDistance with probability ≥ recall. */
export function tablesForRecall(maxDistance: number, bits: number, recall: number): number {
  for (let t = 1; t <= 10_000; t++) if (hammingRecall(maxDistance, bits, t) >= recall) return t;
  throw new RangeError(`no table count up to 10000 reaches recall ${recall} at distance ${maxDistance}`);
}

/**
 * Every pair (i < j) of the hashes within maxDistance that shares a table key, reported once per table it shares
 * (callers that need each pair once dedupe, or union, which is idempotent). Memory: the hashes, one key and one
 * order array of n entries and 2^bits + 1 counters, whatever n; one table at a time.
 */
export function hammingPairs(
  hi: Uint32Array,
  lo: Uint32Array,
  lsh: HammingLsh,
  maxDistance: number,
  onPair: (i: number, j: number) => void,
  tables: Iterable<number> = Array.from({ length: lsh.tables }, (_, t) => t),
): void {
  const n = hi.length;
  const keys = new Uint32Array(n);
  const order = new Uint32Array(n);
  const starts = new Uint32Array((1 << lsh.bits) + 1);
  for (const t of tables) {
    starts.fill(0);
    for (let i = 0; i < n; i++) {
      keys[i] = tableKey(lsh, t, hi[i], lo[i]);
      starts[keys[i] + 1]++;
    }
    for (let k = 1; k < starts.length; k++) starts[k] += starts[k - 1];
    // Counting sort by key (stable: ascending index inside a key), then every pair inside each run of one key.
    const fill = starts.slice(0, -1);
    for (let i = 0; i < n; i++) order[fill[keys[i]]++] = i;
    for (let a = 0; a < n; ) {
      let b = a + 1;
      while (b < n && keys[order[b]] === keys[order[a]]) b++;
      for (let x = a; x < b; x++)
        for (let y = x + 1; y < b; y++) {
          const i = order[x];
          const j = order[y];
          if (hamming64(hi[i], lo[i], hi[j], lo[j]) <= maxDistance) onPair(i, j);
        }
      a = b;
    }
  }
}

/** Band b's key of a MinHash signature: the band number and its rows' bytes, as text (a spill-file field). */
export function textBandKeys(signature: Uint8Array, bands: number): string[] {
  return Array.from({ length: bands }, (_, b) => textBandKey(signature, bands, b)).filter(
    (k): k is string => k !== undefined,
  );
}

/** Band b's key alone (a band job reads only its own band); undefined for an empty text, which matches nothing. */
export function textBandKey(signature: Uint8Array, bands: number, b: number): string | undefined {
  if (signature.length % bands !== 0)
    throw new RangeError(`${bands} bands do not divide a ${signature.length}-row signature`);
  if (signature.every((v) => v === 0)) return undefined;
  const rows = signature.length / bands;
  return `${b}:${Buffer.from(signature.subarray(b * rows, (b + 1) * rows)).toString('hex')}`;
}

/** Probability that two texts of Jaccard similarity j share a band (b bands of r one-byte rows). */
export function textBandRecall(j: number, bands: number, rows: number): number {
  const byte = j + (1 - j) / 256;
  return 1 - (1 - byte ** rows) ** bands;
}

/** Members of one text band bucket up to this size are all paired; larger ones are split by their images. */
export const SMALL_GROUP = 64;

/**
 * Candidate pairs among samples that share a text band key. A small group gives all its pairs. A large one is
 * boilerplate text shared by many samples ("Is this a kitchen? Yes." over thousands of pictures): pairing them all
 * is quadratic, and only samples whose images are near can be near-duplicates, so its members are paired only when
 * their first images share a key of `lsh` (bit-sampling tables sized for the distance), and its text-only members
 * are paired with the group's first text-only member. Pairs come as (smaller, larger) and may repeat.
 */
export function bandGroupPairs(
  members: readonly { g: number; image?: Hash64 }[],
  lsh: HammingLsh,
  onPair: (i: number, j: number) => void,
): void {
  const pair = (a: number, b: number) => (a < b ? onPair(a, b) : onPair(b, a));
  if (members.length <= SMALL_GROUP) {
    for (let x = 0; x < members.length; x++)
      for (let y = x + 1; y < members.length; y++) pair(members[x].g, members[y].g);
    return;
  }
  const textOnly = members.filter((m) => m.image === undefined).map((m) => m.g);
  if (textOnly.length > 1) {
    const first = Math.min(...textOnly);
    for (const g of textOnly) if (g !== first) pair(first, g);
  }
  const withImage = members.filter((m) => m.image !== undefined) as { g: number; image: Hash64 }[];
  for (let t = 0; t < lsh.tables; t++) {
    const byKey = new Map<number, number[]>();
    for (const m of withImage) {
      const k = tableKey(lsh, t, m.image.hi, m.image.lo);
      const list = byKey.get(k);
      if (list) list.push(m.g);
      else byKey.set(k, [m.g]);
    }
    for (const list of byKey.values())
      for (let x = 0; x < list.length; x++) for (let y = x + 1; y < list.length; y++) pair(list[x], list[y]);
  }
}
