// The order of one epoch of a load-time mixture: several streams (built mixtures), each contributing a number of
// samples per epoch, interleaved by keyed times. A pure function of (seed, epoch, counts); any position is located in
// O(streams × 64) with no replay, so the loader state stays a few integers (docs/loader.md, "Load-time mixing").
//
// Stream s contributes items j = 0, 1, … (its own sequence, see `streamItem`). In a segment where stream s gives
// items b_s … n_s − 1 (L_s = n_s − b_s of them), item j gets the time
//   t(s, j) = (j − b_s + u(s, j)) / L_s,   u(s, j) = h(seed, epoch, s, j) ∈ [0, 1),
// and the segment lists items by increasing time (ties, of probability ~2⁻⁵³, would be reported). Every stream's
// items are spread evenly with a random jitter, so any prefix holds each stream in proportion L_s / ΣL within ±1
// item — far tighter than a multinomial draw.
//
// An epoch starts as one segment (b = 0, n = the targets). A weight change on resume starts a new segment at the
// resume position P0: stream s continues with items j ≥ b_s (the items it gave before P0) up to its new target.
// Items are never re-numbered, so nothing consumed before P0 comes again in the epoch.
import { keyedHash64 } from '../../core/keyed-hash.ts';

export interface MixSegment {
  /** Epoch position where the segment starts (0 for an epoch's first segment). */
  start: number;
  /** Items each stream had given before `start` (all 0 for the first segment). */
  base: readonly number[];
  /** Items each stream gives in the whole epoch (its target); a stream with target ≤ base gives no more. */
  counts: readonly number[];
}

/** 2⁻⁵³: u(s, j) takes the hash's top 53 bits, exactly representable. */
const U_SCALE = 2 ** -53;

export class MixOrder {
  /** Positions in the epoch (the segment's start plus what every stream still gives). */
  readonly total: number;
  private readonly left: number[];

  constructor(
    readonly seed: number,
    readonly epoch: number,
    readonly segment: MixSegment,
  ) {
    const { base, counts, start } = segment;
    if (base.length !== counts.length) throw new RangeError('mix order: base and counts differ in length');
    for (const v of [...base, ...counts, start])
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`mix order: ${v} is not a count`);
    this.left = counts.map((n, s) => Math.max(0, n - base[s]));
    this.total = start + this.left.reduce((a, b) => a + b, 0);
  }

  get streams(): number {
    return this.segment.counts.length;
  }

  /** The keyed jitter of item j of stream s, in [0, 1). */
  jitter(s: number, j: number): number {
    return Number(keyedHash64(this.seed, `loader/mix/epoch=${this.epoch}`, `${s}/${j}`) >> 11n) * U_SCALE;
  }

  /** Items of stream s (absolute numbering) with time < τ: b_s + those of the segment before τ. */
  private before(s: number, tau: number): number {
    const b = this.segment.base[s];
    const left = this.left[s];
    if (left === 0) return b;
    const x = tau * left;
    const f = Math.floor(x);
    // Local items i < f have time < f/L ≤ τ; item f counts when its jitter is below the fraction; later ones never.
    if (f >= left) return b + left;
    return b + f + (this.jitter(s, b + f) < x - f ? 1 : 0);
  }

  /**
   * Items each stream has given before epoch position p (start ≤ p ≤ total): a binary search for a time τ whose
   * count of earlier items is p − start. Times are distinct, so such τ exists and the counts are exact.
   */
  countsAt(p: number): number[] {
    const { start, base } = this.segment;
    if (!Number.isInteger(p) || p < start || p > this.total)
      throw new RangeError(`mix position ${p} outside [${start}, ${this.total}]`);
    if (p === this.total) return this.segment.counts.map((n, s) => Math.max(n, base[s]));
    const target = p - start;
    const counted = (tau: number) => {
      let c = 0;
      for (let s = 0; s < this.streams; s++) c += this.before(s, tau) - base[s];
      return c;
    };
    let lo = 0;
    let hi = 1;
    // Invariant: counted(lo) ≤ target < counted(hi); stops when the interval holds exactly one time.
    for (let i = 0; i < 80 && counted(lo) !== target; i++) {
      const mid = (lo + hi) / 2;
      if (counted(mid) <= target) lo = mid;
      else hi = mid;
    }
    if (counted(lo) !== target) throw new Error(`mix order: no time separates position ${p} (tie)`);
    return Array.from({ length: this.streams }, (_, s) => this.before(s, lo));
  }

  /** The stream and item at position p, given the counts before p: the stream whose next item comes first. */
  next(counts: readonly number[]): { stream: number; item: number } {
    let best = -1;
    let bestTime = Number.POSITIVE_INFINITY;
    for (let s = 0; s < this.streams; s++) {
      const b = this.segment.base[s];
      const j = counts[s];
      if (j >= b + this.left[s]) continue;
      const t = (j - b + this.jitter(s, j)) / this.left[s];
      if (t < bestTime) {
        bestTime = t;
        best = s;
      }
    }
    if (best < 0) throw new RangeError('mix order: every stream is exhausted');
    return { stream: best, item: counts[best] };
  }

  /** The stream and item at position p (start ≤ p < total). */
  at(p: number): { stream: number; item: number } {
    if (p >= this.total)
      throw new RangeError(`mix position ${p} outside [${this.segment.start}, ${this.total})`);
    return this.next(this.countsAt(p));
  }
}

/**
 * Per-epoch targets from weights: n_s = round(w_s / Σw · epochSize) by largest remainder (Σ n_s = epochSize exactly,
 * ties to the earlier stream), so the epoch's size is what was asked and no stream's share is off by more than one.
 */
export function countsFromWeights(weights: readonly number[], epochSize: number): number[] {
  if (!weights.length) throw new RangeError('mix: no streams');
  for (const w of weights)
    if (!Number.isFinite(w) || w < 0) throw new RangeError(`mix: weight ${w} is not a non-negative number`);
  const sum = weights.reduce((a, b) => a + b, 0);
  if (sum <= 0) throw new RangeError('mix: the weights sum to 0');
  if (!Number.isSafeInteger(epochSize) || epochSize < 0) throw new RangeError(`mix: epoch size ${epochSize}`);
  const exact = weights.map((w) => (w / sum) * epochSize);
  const counts = exact.map(Math.floor);
  let rest = epochSize - counts.reduce((a, b) => a + b, 0);
  const byRemainder = exact
    .map((x, s) => ({ s, r: x - Math.floor(x) }))
    .sort((a, b) => b.r - a.r || a.s - b.s);
  for (const { s } of byRemainder) {
    if (rest-- <= 0) break;
    counts[s] += 1;
  }
  return counts;
}

/**
 * Where item j of a stream of N samples lies: pass ⌊j / N⌋ of the stream (each pass a fresh keyed permutation of
 * the stream), position j mod N in it. A target above N repeats the stream (upsampling: every sample once per pass
 * before any sample a further time); a target below N takes the first n positions of the pass (a keyed subset,
 * another one each epoch).
 */
export function streamItem(item: number, streamSize: number): { pass: number; position: number } {
  if (streamSize < 1) throw new RangeError('mix: a stream has no samples');
  return { pass: Math.floor(item / streamSize), position: item % streamSize };
}
