// The epoch order of LLaVA's `group_by_modality_length` for the loader: micro-batches of one modality (image or
// text-only) and similar length, from the modality lengths the token-count sidecar keeps (`mixforge tokens`). A
// drop-in for EpochOrder (same addressOf), computed once per epoch; the grouping itself is train-bridge/text's.
import { groupByModalityLength } from '../text/index.ts';
import type { OrderShard, SampleAddress } from './epoch-order.ts';

export interface LengthGroupingOptions {
  /** Micro-batch size. */
  batchSize: number;
  /** Ranks × gradient accumulation steps (the reference passes world_size × gradient_accumulation_steps). */
  worldSize: number;
  seed: number;
  epoch: number;
  rowGroupSize: number;
}

export class LengthGroupedOrder {
  readonly total: number;
  /** Epoch position → row of the concatenated shards. */
  private readonly rows: Int32Array;
  private readonly shardStarts: number[] = [];

  constructor(
    readonly shards: readonly OrderShard[],
    /** Per shard, the reference's modality length of each row (± words, negative without images). */
    modality: readonly Int32Array[],
    readonly opts: LengthGroupingOptions,
  ) {
    let start = 0;
    const samples: { id: string; modalityLength: number }[] = [];
    shards.forEach((s, i) => {
      if (modality[i].length !== s.rows)
        throw new RangeError(`length grouping: ${s.path} has ${s.rows} rows, ${modality[i].length} lengths`);
      this.shardStarts.push(start);
      start += s.rows;
      // The keyed shuffles key each sample by where it is stored, so the order needs no id column.
      for (let r = 0; r < s.rows; r++) samples.push({ id: `${s.path}#${r}`, modalityLength: modality[i][r] });
    });
    this.total = start;
    this.rows = Int32Array.from(groupByModalityLength(samples, opts));
  }

  addressOf(position: number): SampleAddress {
    if (!Number.isInteger(position) || position < 0 || position >= this.total)
      throw new RangeError(`epoch position ${position} outside [0, ${this.total})`);
    const g = this.rows[position];
    let lo = 0;
    let hi = this.shardStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.shardStarts[mid] <= g) lo = mid;
      else hi = mid - 1;
    }
    const row = g - this.shardStarts[lo];
    return { shard: lo, group: Math.floor(row / this.opts.rowGroupSize), row: row % this.opts.rowGroupSize };
  }

  /** Reads jump across the whole mixture: count every lane as visited. */
  lanesVisited(): number {
    return this.shards.length;
  }
}
