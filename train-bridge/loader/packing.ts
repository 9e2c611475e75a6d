// Sequence packing: samples of the loader's keyed order go into sequences of at most `capacity` tokens by first-fit
// over a bounded window of that order. Pure and deterministic; its state (input cursor + the window's pending
// samples) is small, so a packed stream resumes at the exact sample (docs/loader.md, "Packing").
//
// Each pack: refill the window to `window` samples from the order, then scan it in order, taking every sample that
// still fits (the first always goes; one longer than the capacity goes alone and is cut by the trainer). Samples
// left behind keep their order and are considered first for the next pack, so none waits more than a few packs.

export interface PackerState<R> {
  /** Index in the input order of the next sample not yet in the window. */
  cursor: number;
  /** Samples in the window, not yet packed, in input order. */
  pending: { ref: R; length: number }[];
}

export interface Pack<R> {
  refs: R[];
  /** Tokens used (each sample counted up to the capacity). */
  tokens: number;
}

export interface PackerOptions {
  capacity: number;
  window: number;
}

export function checkPackerOptions(o: PackerOptions): void {
  for (const [name, v] of Object.entries(o))
    if (!Number.isSafeInteger(v) || v < 1)
      throw new RangeError(`packing: ${name} must be a positive integer, got ${v}`);
}

/**
 * Packs from `state` to the end of the input (`end` samples; `input(i)` gives sample i's ref and length). Yields each
 * pack with the packer state after it; the caller's state object is not modified.
 */
export function* packFirstFit<R>(
  input: (index: number) => { ref: R; length: number },
  end: number,
  opts: PackerOptions,
  state: PackerState<R> = { cursor: 0, pending: [] },
): Generator<{ pack: Pack<R>; after: PackerState<R> }> {
  checkPackerOptions(opts);
  let cursor = state.cursor;
  let pending = [...state.pending];
  for (;;) {
    while (pending.length < opts.window && cursor < end) pending.push(input(cursor++));
    if (!pending.length) return;
    const refs: R[] = [];
    const rest: typeof pending = [];
    let tokens = 0;
    for (const p of pending) {
      const len = Math.min(p.length, opts.capacity);
      if (refs.length === 0 || tokens + len <= opts.capacity) {
        refs.push(p.ref);
        tokens += len;
      } else rest.push(p);
    }
    pending = rest;
    yield { pack: { refs, tokens }, after: { cursor, pending: [...pending] } };
  }
}

/**
 * The bound packing is measured against: first-fit decreasing over the whole input (not streamable). Returns the
 * number of bins. A max-tree over the bins' free space finds the first bin that fits in O(log n).
 */
export function packFirstFitDecreasing(lengths: readonly number[], capacity: number): number {
  const sorted = lengths.map((l) => Math.min(l, capacity)).sort((a, b) => b - a);
  let size = 1;
  while (size < Math.max(1, sorted.length)) size *= 2;
  // free[size + b] = free space of bin b (unopened bins are empty); inner nodes hold their subtree's maximum.
  const free = new Float64Array(2 * size).fill(capacity);
  let used = 0;
  for (const len of sorted) {
    let node = 1;
    while (node < size) node = free[2 * node] >= len ? 2 * node : 2 * node + 1;
    used = Math.max(used, node - size + 1);
    free[node] -= len;
    for (node >>= 1; node >= 1; node >>= 1) free[node] = Math.max(free[2 * node], free[2 * node + 1]);
  }
  return used;
}
