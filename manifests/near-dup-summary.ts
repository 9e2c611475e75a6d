// What the near-dedup stage reports (`_build/near-dup.json`): per-component drop counts and a few example pairs
// with thumbnails. Read by report.html; written by pipelines/jobs/near-dedup.ts.

export type NearDupReason = 'near-duplicate-image' | 'near-duplicate-text';

export interface NearDupExample {
  reason: NearDupReason;
  /** `thumbnail`: the first image as a small JPEG data: URI (for report.html), when the sample has one. */
  dropped: { id: string; component: string; thumbnail?: string };
  kept: { id: string; component: string; thumbnail?: string };
  /** Largest Hamming distance between corresponding images (bits of 64); the estimated text Jaccard. */
  distance: number;
  jaccard: number;
}

export interface NearDupSummary {
  enabled: boolean;
  candidates: number;
  components: Record<string, Record<NearDupReason, number>>;
  /** A few dropped/kept pairs for the report, in keyed order. */
  examples: NearDupExample[];
}
