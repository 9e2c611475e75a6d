// Splits what is left of an epoch between ranks and their workers: strided slices of the suffix [start, total) of
// the epoch order, equal counts per rank. Pure arithmetic, so a resume with another world size is exact.
//
// Rank r of W takes slots start + r + W·k (k = 0, 1, …); the rank's k-th sample goes to worker k mod numWorkers.
// The remainder R mod W (R = total − start) is handled by `remainder`:
//   - 'pad' (default, like PyTorch's DistributedSampler): every rank gets ceil(R / W); the fewer than W slots past
//     the end wrap to the beginning of the epoch order, so every remaining sample is seen and the padding repeats
//     the epoch's first samples (the same ones whatever the resume point, so a resumed run equals an unbroken one);
//   - 'drop': every rank gets floor(R / W); the last R mod W samples of the order are not served this epoch.

export type RemainderPolicy = 'pad' | 'drop';

export interface PartitionSpec {
  rank: number;
  worldSize: number;
  workerId: number;
  numWorkers: number;
  /** First epoch position not yet consumed (the resume point; 0 for a fresh epoch). */
  start: number;
  /** Samples in the epoch. */
  total: number;
  remainder: RemainderPolicy;
}

export function checkPartition(p: PartitionSpec): void {
  const int = (name: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min)
      throw new RangeError(`partition: ${name} must be an integer ≥ ${min}, got ${v}`);
  };
  int('worldSize', p.worldSize, 1);
  int('numWorkers', p.numWorkers, 1);
  int('rank', p.rank, 0);
  int('workerId', p.workerId, 0);
  int('start', p.start, 0);
  if (p.rank >= p.worldSize)
    throw new RangeError(`partition: rank ${p.rank} not below world size ${p.worldSize}`);
  if (p.workerId >= p.numWorkers)
    throw new RangeError(`partition: worker ${p.workerId} not below numWorkers ${p.numWorkers}`);
  if (p.start > p.total)
    throw new RangeError(`partition: start ${p.start} past the end of the epoch (${p.total})`);
}

/** A loader's place among ranks and workers. */
export type RankSlot = Pick<PartitionSpec, 'rank' | 'worldSize' | 'workerId' | 'numWorkers'>;

/** The slot a loader's options name (defaults: one rank, one worker), checked. */
export function rankSlot(o: Partial<RankSlot>): RankSlot {
  const slot = {
    rank: o.rank ?? 0,
    worldSize: o.worldSize ?? 1,
    workerId: o.workerId ?? 0,
    numWorkers: o.numWorkers ?? 1,
  };
  checkPartition({ ...slot, start: 0, total: 0, remainder: 'pad' });
  return slot;
}

/** Samples each rank serves from `start` to the end of the epoch. */
export function rankCount(p: Pick<PartitionSpec, 'worldSize' | 'start' | 'total' | 'remainder'>): number {
  const left = p.total - p.start;
  return p.remainder === 'drop' ? Math.floor(left / p.worldSize) : Math.ceil(left / p.worldSize);
}

/** Samples worker `workerId` of a rank serves. */
export function workerCount(p: PartitionSpec): number {
  const k = rankCount(p);
  return k > p.workerId ? Math.ceil((k - p.workerId) / p.numWorkers) : 0;
}

/** Epoch position of the rank's k-th sample (0 ≤ k < rankCount). Pad slots wrap to the start of the epoch. */
export function rankPosition(
  p: Pick<PartitionSpec, 'rank' | 'worldSize' | 'start' | 'total'>,
  k: number,
): number {
  const slot = p.start + p.rank + p.worldSize * k;
  if (slot < p.total) return slot;
  return (slot - p.total) % p.total;
}

/**
 * The resume point after every rank consumed its first k samples (ranks step in lockstep in data-parallel
 * training): all slots below start + W·k are consumed; once k reaches the rank count the epoch is done.
 */
export function positionAfter(
  p: Pick<PartitionSpec, 'worldSize' | 'start' | 'total' | 'remainder'>,
  k: number,
): number {
  if (k >= rankCount(p)) return p.total;
  return p.start + p.worldSize * k;
}
