// Per-component accounting: in = kept + Σ dropped, every drop under its reason. Checked at finalize and verify.

export interface ComponentCounts {
  /** Records the reader saw (yielded + quarantined while reading). */
  in: number;
  /** Samples selected into the mixture (before repeat). */
  kept: number;
  /** Rows written (kept × repeat). */
  emitted: number;
  /** Dropped records by reason: `quarantine:<reason>`, `filter:<name>`, `dedup`, `not-taken`. */
  dropped: Record<string, number>;
}

export function emptyCounts(): ComponentCounts {
  return { in: 0, kept: 0, emitted: 0, dropped: {} };
}

export function addDrop(c: ComponentCounts, reason: string, n = 1): void {
  c.dropped[reason] = (c.dropped[reason] ?? 0) + n;
}

export function mergeCounts(into: ComponentCounts, from: ComponentCounts): void {
  into.in += from.in;
  into.kept += from.kept;
  into.emitted += from.emitted;
  for (const [k, v] of Object.entries(from.dropped)) addDrop(into, k, v);
}

export function totalDropped(c: ComponentCounts): number {
  return Object.values(c.dropped).reduce((a, b) => a + b, 0);
}

/** Sorted-key copy so serialised counts are byte-stable. */
export function sortedDrops(c: ComponentCounts): ComponentCounts {
  return {
    ...c,
    dropped: Object.fromEntries(Object.entries(c.dropped).sort(([a], [b]) => (a < b ? -1 : 1))),
  };
}

export function checkBalance(component: string, c: ComponentCounts): string | undefined {
  const d = totalDropped(c);
  return c.in === c.kept + d
    ? undefined
    : `component '${component}': in ${c.in} != kept ${c.kept} + dropped ${d}`;
}
