// Fixed-bin statistics of built samples, computed per shard at write time and merged for the report, so the
// report never re-reads the images. Bins are fixed so merging is addition and the output is deterministic.
import type { Sample } from '../core/schema.ts';

export const SIDE_BINS = [0, 128, 256, 384, 512, 768, 1024, 1536, 2048, 4096];
export const ASPECT_BINS = [0, 0.25, 0.5, 0.75, 1, 1.33, 1.5, 2, 3, 4];
export const TURN_BINS = [0, 2, 4, 6, 8, 12, 16, 24, 32, 64];
export const CHAR_BINS = [0, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];

export interface ShardStats {
  /** component → source → rows */
  bySource: Record<string, Record<string, number>>;
  images: number;
  textOnly: number;
  longSide: number[];
  aspect: number[];
  turns: number[];
  chars: number[];
  /** Single-image samples: first human turn starts with <image> ("before") or ends with it ("after"). */
  placement: Record<string, { before: number; after: number }>;
}

export function emptyShardStats(): ShardStats {
  return {
    bySource: {},
    images: 0,
    textOnly: 0,
    longSide: SIDE_BINS.map(() => 0),
    aspect: ASPECT_BINS.map(() => 0),
    turns: TURN_BINS.map(() => 0),
    chars: CHAR_BINS.map(() => 0),
    placement: {},
  };
}

/** Index of the last bin whose lower edge is ≤ x. */
export function binOf(bins: number[], x: number): number {
  let i = 0;
  while (i + 1 < bins.length && bins[i + 1] <= x) i++;
  return i;
}

export function addSampleToStats(
  st: ShardStats,
  s: Pick<Sample, 'source' | 'images' | 'conversations'>,
  component: string,
): void {
  st.bySource[component] ??= {};
  const bySrc = st.bySource[component];
  bySrc[s.source] = (bySrc[s.source] ?? 0) + 1;
  if (s.images.length === 0) st.textOnly++;
  for (const im of s.images) {
    st.images++;
    st.longSide[binOf(SIDE_BINS, Math.max(im.width, im.height))]++;
    st.aspect[binOf(ASPECT_BINS, im.width / Math.max(1, im.height))]++;
  }
  st.turns[binOf(TURN_BINS, s.conversations.length)]++;
  st.chars[
    binOf(
      CHAR_BINS,
      s.conversations.reduce((n, t) => n + t.value.length, 0),
    )
  ]++;
  const firstHuman = s.conversations.find((t) => t.from === 'human');
  if (firstHuman && s.images.length === 1) {
    st.placement[component] ??= { before: 0, after: 0 };
    const p = st.placement[component];
    if (firstHuman.value.startsWith('<image>')) p.before++;
    else if (firstHuman.value.endsWith('<image>')) p.after++;
  }
}

export function mergeShardStats(into: ShardStats, from: ShardStats): void {
  for (const [c, m] of Object.entries(from.bySource)) {
    into.bySource[c] ??= {};
    const t = into.bySource[c];
    for (const [s, n] of Object.entries(m)) t[s] = (t[s] ?? 0) + n;
  }
  into.images += from.images;
  into.textOnly += from.textOnly;
  for (const k of ['longSide', 'aspect', 'turns', 'chars'] as const)
    for (const [i, v] of from[k].entries()) into[k][i] += v;
  for (const [c, p] of Object.entries(from.placement)) {
    into.placement[c] ??= { before: 0, after: 0 };
    const t = into.placement[c];
    t.before += p.before;
    t.after += p.after;
  }
}
