// The sample order of one epoch of a built mixture: a pure function of (shard row counts, seed, epoch, lanes,
// shuffle window). No stateful RNG: every decision is a keyed hash, so any position can be located directly.
//
// Construction (docs/loader.md):
//   1. units = every row group of every shard, permuted per epoch by h(seed, epoch, shard path, group);
//   2. stream = the units' rows concatenated in that order (N rows);
//   3. lanes = `lanes` contiguous, near-equal spans of the stream (a fixed "canonical" partition, like MosaicML's
//      canonical nodes: it never depends on the world size, so the order does not either);
//   4. inside each lane, consecutive windows of `shuffleWindow` rows are permuted by keyed hashes (a bounded
//      shuffle buffer: memory is one window per lane, never the shard or the dataset);
//   5. the epoch order G interleaves the lanes round-robin: G[p] is lane p mod lanes, item floor(p / lanes).
// A rank of world size W takes positions r, r+W, r+2W, … of G; when W divides `lanes` these fall in lanes
// r mod W only, so ranks read disjoint row groups.
import { keyedHash64 } from '../../core/keyed-hash.ts';

export interface OrderShard {
  path: string;
  rows: number;
}

export interface OrderParams {
  seed: number;
  epoch: number;
  /** Canonical partitions of the stream (fixed for a run; choose a multiple of every world size you will use). */
  lanes: number;
  /** Rows per keyed shuffle window inside a lane. */
  shuffleWindow: number;
  /** Rows per row group of the shards (the writer's SHARD_ROW_GROUP); checked when a shard is opened. */
  rowGroupSize: number;
}

/** Where the sample at a position lives: shard index (in the manifest), row group, row inside the group. */
export interface SampleAddress {
  shard: number;
  group: number;
  row: number;
}

interface Unit {
  shard: number;
  group: number;
  rows: number;
  /** Index in the stream of the unit's first row. */
  streamStart: number;
}

/** A 32-bit avalanche mix (the finaliser of a well-known integer hash): cheap per-item hashing inside a window. */
function mix32(x: number): number {
  let h = x | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

export class EpochOrder {
  /** Rows in the epoch (the manifest's total). */
  readonly total: number;
  private readonly units: Unit[];
  private readonly windowCache = new Map<number, { window: number; perm: Uint32Array }>();

  constructor(
    readonly shards: readonly OrderShard[],
    readonly params: OrderParams,
  ) {
    const { lanes, shuffleWindow, rowGroupSize } = params;
    for (const [name, v] of Object.entries({ lanes, shuffleWindow, rowGroupSize }))
      if (!Number.isInteger(v) || v < 1)
        throw new RangeError(`epoch order: ${name} must be a positive integer, got ${v}`);
    if (!Number.isInteger(params.epoch) || params.epoch < 0)
      throw new RangeError(`epoch order: epoch must be a non-negative integer, got ${params.epoch}`);
    const keyed: { unit: Unit; key: bigint }[] = [];
    shards.forEach((s, shard) => {
      for (let group = 0; group * rowGroupSize < s.rows; group++) {
        const rows = Math.min(rowGroupSize, s.rows - group * rowGroupSize);
        const key = keyedHash64(params.seed, `loader/units/epoch=${params.epoch}`, `${s.path}#${group}`);
        keyed.push({ unit: { shard, group, rows, streamStart: 0 }, key });
      }
    });
    keyed.sort((a, b) =>
      a.key < b.key ? -1 : a.key > b.key ? 1 : a.unit.shard - b.unit.shard || a.unit.group - b.unit.group,
    );
    let start = 0;
    this.units = keyed.map(({ unit }) => {
      unit.streamStart = start;
      start += unit.rows;
      return unit;
    });
    this.total = start;
  }

  /** Stream span of a lane: near-equal contiguous spans, the first `total mod lanes` lanes one row longer. */
  laneSpan(lane: number): { start: number; length: number } {
    const { lanes } = this.params;
    const q = Math.floor(this.total / lanes);
    const rem = this.total % lanes;
    return { start: lane * q + Math.min(lane, rem), length: q + (lane < rem ? 1 : 0) };
  }

  /** The lane and the index inside the lane of epoch position p (round-robin interleave of unequal lanes). */
  laneOf(position: number): { lane: number; index: number } {
    const { lanes } = this.params;
    const q = Math.floor(this.total / lanes);
    const full = q * lanes;
    if (position < full) return { lane: position % lanes, index: Math.floor(position / lanes) };
    return { lane: position - full, index: q };
  }

  /** The keyed permutation of window `window` of a lane (cached: a reader walks a lane window by window). */
  private windowPerm(lane: number, window: number, length: number): Uint32Array {
    const hit = this.windowCache.get(lane);
    if (hit && hit.window === window) return hit.perm;
    const k = keyedHash64(this.params.seed, `loader/window/epoch=${this.params.epoch}`, `${lane}/${window}`);
    const k0 = Number(k & 0xffffffffn) | 0;
    const k1 = Number(k >> 32n) | 0;
    const hashes = new Uint32Array(length);
    for (let j = 0; j < length; j++) hashes[j] = mix32(k0 ^ mix32((j + k1) | 0));
    const perm = new Uint32Array(length);
    for (let j = 0; j < length; j++) perm[j] = j;
    perm.sort((a, b) => hashes[a] - hashes[b] || a - b);
    this.windowCache.set(lane, { window, perm });
    return perm;
  }

  /** Stream index (row of the concatenated permuted row groups) of epoch position p. */
  streamIndex(position: number): number {
    if (!Number.isInteger(position) || position < 0 || position >= this.total)
      throw new RangeError(`epoch position ${position} outside [0, ${this.total})`);
    const { lane, index } = this.laneOf(position);
    const span = this.laneSpan(lane);
    const b = this.params.shuffleWindow;
    const window = Math.floor(index / b);
    const windowStart = window * b;
    const perm = this.windowPerm(lane, window, Math.min(b, span.length - windowStart));
    return span.start + windowStart + perm[index - windowStart];
  }

  /** Where the sample at epoch position p lives. */
  addressOf(position: number): SampleAddress {
    const s = this.streamIndex(position);
    let lo = 0;
    let hi = this.units.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.units[mid].streamStart <= s) lo = mid;
      else hi = mid - 1;
    }
    const u = this.units[lo];
    return { shard: u.shard, group: u.group, row: s - u.streamStart };
  }

  /** How many lanes a reader visits when it takes every `stride`-th position: lanes / gcd(stride, lanes). */
  lanesVisited(stride: number): number {
    let a = stride;
    let b = this.params.lanes;
    while (b) [a, b] = [b, a % b];
    return this.params.lanes / a;
  }
}
