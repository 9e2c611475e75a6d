// What every loader of the order shares: its place among ranks and workers, the epoch, the lanes and the remainder
// policy, read from its options with the defaults of LOADER_DEFAULTS. The single-mixture and the mixed loader extend it.
import type { PartitionSpec, RemainderPolicy } from './partition.ts';
import { rankSlot } from './partition.ts';

export interface RankedLoaderOptions {
  rank?: number;
  worldSize?: number;
  /** This iterator's worker among the rank's workers: it serves the rank's samples k ≡ workerId (mod numWorkers). */
  workerId?: number;
  numWorkers?: number;
  epoch?: number;
  /** Canonical partitions of the order; ranks read disjoint row groups when the world size divides it. */
  lanes?: number;
  remainder?: RemainderPolicy;
}

export const RANKED_DEFAULTS = { lanes: 8, remainder: 'pad' as RemainderPolicy };

export abstract class RankedLoader {
  readonly rank: number;
  readonly worldSize: number;
  readonly workerId: number;
  readonly numWorkers: number;
  protected epoch: number;
  protected lanes: number;
  protected remainder: RemainderPolicy;

  constructor(opts: RankedLoaderOptions) {
    const slot = rankSlot(opts);
    this.rank = slot.rank;
    this.worldSize = slot.worldSize;
    this.workerId = slot.workerId;
    this.numWorkers = slot.numWorkers;
    this.epoch = opts.epoch ?? 0;
    this.lanes = opts.lanes ?? RANKED_DEFAULTS.lanes;
    this.remainder = opts.remainder ?? RANKED_DEFAULTS.remainder;
  }

  protected partitionBase(): Omit<PartitionSpec, 'start' | 'total'> {
    const { rank, worldSize, workerId, numWorkers, remainder } = this;
    return { rank, worldSize, workerId, numWorkers, remainder };
  }
}
