// StreamingDataset: an async iterator over the samples of a built mixture (local or S3) for one rank and worker,
// in the deterministic epoch order (epoch-order.ts), with sample-exact and elastic resume (state.ts, partition.ts).
import { joinUri } from '../../core/storage/index.ts';
import { type Manifest, manifestRoot, readManifest } from '../../manifests/manifest.ts';
import { SHARD_ROW_GROUP } from '../../manifests/shard-format.ts';
import { readTokenSidecar } from '../../manifests/token-counts.ts';
import { EpochOrder } from './epoch-order.ts';
import { LengthGroupedOrder } from './length-grouped-order.ts';
import { type PartitionSpec, positionAfter, rankCount, rankPosition, workerCount } from './partition.ts';
import { RANKED_DEFAULTS, RankedLoader, type RankedLoaderOptions } from './ranked-loader.ts';
import { RowGroupSource, type ShardRow } from './row-group-source.ts';
import { ShardCache } from './shard-cache.ts';
import {
  LOADER_STATE_KIND,
  LOADER_STATE_VERSION,
  type LoaderState,
  LoaderStateError,
  layoutHash,
} from './state.ts';

export interface StreamingDatasetOptions extends RankedLoaderOptions {
  /** Seed of the epoch order; defaults to the mixture's seed. */
  seed?: number;
  /** Rows shuffled together, summed over lanes (each lane shuffles windows of ceil(shuffleBuffer / lanes)). */
  shuffleBuffer?: number;
  /** Local cache folder for remote (s3://) shards. */
  cacheDir?: string;
  cacheMaxBytes?: number;
  /** Row groups loaded ahead of the one being read. */
  prefetchGroups?: number;
  /**
   * Check each row group read against the manifest's sha256 (default true). `false` exists only so bench/loader.ts
   * can measure what the check costs; the footer and byte counts are checked either way.
   */
  checkRowGroups?: boolean;
  /**
   * LLaVA's group_by_modality_length instead of the keyed order: micro-batches of one modality and similar length
   * (batchSize = micro-batch, worldSize = ranks × accumulation), from the sidecar `mixforge tokens` writes at
   * `resolution`. Reads then jump across the mixture (use small shards or a local cache).
   */
  groupByModalityLength?: { batchSize: number; worldSize: number; resolution: number };
}

export const LOADER_DEFAULTS = {
  ...RANKED_DEFAULTS,
  shuffleBuffer: 2048,
  cacheMaxBytes: 8 * 1024 ** 3,
  prefetchGroups: 4,
};

/** The shuffle window per lane and the local shard cache (if any) that a loader's options give. */
export function loaderStorage(
  opts: Pick<StreamingDatasetOptions, 'shuffleBuffer' | 'cacheDir' | 'cacheMaxBytes'>,
  lanes: number,
): { shuffleWindow: number; cache: ShardCache | undefined } {
  return {
    shuffleWindow: Math.ceil((opts.shuffleBuffer ?? LOADER_DEFAULTS.shuffleBuffer) / lanes),
    cache: opts.cacheDir
      ? new ShardCache(opts.cacheDir, opts.cacheMaxBytes ?? LOADER_DEFAULTS.cacheMaxBytes)
      : undefined,
  };
}

/** A sample as the loader yields it: the row plus where it sits in the epoch order. */
export interface LoaderSample extends ShardRow {
  epoch: number;
  /** Position in the epoch order. */
  position: number;
  /** Index in the rank's sequence (what a rank-level consumer has consumed once it holds this sample, minus one). */
  rankIndex: number;
}

export class StreamingDataset extends RankedLoader implements AsyncIterable<LoaderSample> {
  private seed: number | undefined;
  private shuffleWindow: number | undefined;
  private start = 0;
  private consumed = 0;
  private manifest: Manifest | undefined;
  private layout = '';
  private source: RowGroupSource | undefined;
  private order: EpochOrder | LengthGroupedOrder | undefined;
  private modality: Int32Array[] | undefined;
  private opening: Promise<void> | undefined;
  private pendingResume: LoaderState | undefined;

  constructor(
    readonly manifestUri: string,
    readonly opts: StreamingDatasetOptions = {},
  ) {
    super(opts);
    this.seed = opts.seed;
  }

  /** Read the manifest and set up readers; iteration calls it, `state()` needs it. */
  open(): Promise<void> {
    this.opening ??= (async () => {
      const m = await readManifest(this.manifestUri);
      this.manifest = m;
      this.layout = layoutHash(m.shards);
      this.seed ??= m.seed;
      const { shuffleWindow, cache } = loaderStorage(this.opts, this.lanes);
      this.shuffleWindow = shuffleWindow;
      this.source = new RowGroupSource(manifestRoot(this.manifestUri), m.shards, {
        rowGroupSize: SHARD_ROW_GROUP,
        decodedGroups: 1,
        cache,
        checkRowGroups: this.opts.checkRowGroups,
      });
      const grouping = this.opts.groupByModalityLength;
      if (grouping)
        this.modality = (await readTokenSidecar(this.manifestUri, grouping.resolution)).map(
          (s) => s.modality,
        );
      if (this.pendingResume) this.applyResume(this.pendingResume);
      this.rebuildOrder();
    })();
    return this.opening;
  }

  private rebuildOrder(): void {
    const m = this.manifest!;
    const grouping = this.opts.groupByModalityLength;
    if (grouping && this.modality) {
      this.order = new LengthGroupedOrder(m.shards, this.modality, {
        batchSize: grouping.batchSize,
        worldSize: grouping.worldSize,
        seed: this.seed!,
        epoch: this.epoch,
        rowGroupSize: SHARD_ROW_GROUP,
      });
    } else
      this.order = new EpochOrder(m.shards, {
        seed: this.seed!,
        epoch: this.epoch,
        lanes: this.lanes,
        shuffleWindow: this.shuffleWindow!,
        rowGroupSize: SHARD_ROW_GROUP,
      });
    // Memory bound: the current window of every lane this reader visits, plus the prefetched groups.
    const perLane = Math.ceil(this.shuffleWindow! / SHARD_ROW_GROUP) + 1;
    const prefetch = this.opts.prefetchGroups ?? LOADER_DEFAULTS.prefetchGroups;
    this.source!.setDecodedCapacity(
      this.order.lanesVisited(this.worldSize * this.numWorkers) * perLane + prefetch + 1,
    );
  }

  /** Samples in an epoch of the mixture. */
  get total(): number {
    if (!this.order) throw new Error('StreamingDataset: call open() (or start iterating) first');
    return this.order.total;
  }

  private partition(): PartitionSpec {
    return { ...this.partitionBase(), start: this.start, total: this.total };
  }

  /** Samples this rank serves from the resume point to the end of the epoch. */
  rankLength(): number {
    return rankCount(this.partition());
  }

  /** Samples this iterator (one worker of the rank) yields. */
  length(): number {
    return workerCount(this.partition());
  }

  /** Move to another epoch (like DistributedSampler.set_epoch), from its beginning. */
  setEpoch(epoch: number): void {
    if (!Number.isInteger(epoch) || epoch < 0)
      throw new RangeError(`epoch must be a non-negative integer, got ${epoch}`);
    this.epoch = epoch;
    this.start = 0;
    this.consumed = 0;
    if (this.manifest) this.rebuildOrder();
  }

  /** The state after the rank consumed `rankConsumed` samples of its sequence (every rank in lockstep). */
  stateAfter(rankConsumed: number): LoaderState {
    const part = this.partition();
    return {
      kind: LOADER_STATE_KIND,
      version: LOADER_STATE_VERSION,
      layout: this.layout,
      seed: this.seed!,
      epoch: this.epoch,
      lanes: this.lanes,
      shuffleWindow: this.shuffleWindow!,
      remainder: this.remainder,
      position: positionAfter(part, rankConsumed),
      total: part.total,
      worldSizeAtSave: this.worldSize,
      ...(this.opts.groupByModalityLength ? { grouping: { ...this.opts.groupByModalityLength } } : {}),
    };
  }

  /**
   * The state after the last sample this iterator yielded: the job's state when that sample was the last one
   * the rank consumed (a rank-level consumer takes worker k mod numWorkers's sample as its k-th).
   */
  state(): LoaderState {
    return this.stateAfter(this.consumed);
  }

  /** Continue at the sample after `state`; the world size may differ from the one at save (elastic). */
  resume(state: LoaderState): void {
    if (!this.manifest) {
      this.pendingResume = state;
      return;
    }
    this.applyResume(state);
    this.rebuildOrder();
  }

  private applyResume(state: LoaderState): void {
    const grouping = (g: LoaderState['grouping']) =>
      g ? `group_by_modality_length ${g.batchSize}×${g.worldSize} at ${g.resolution}` : 'the keyed order';
    const want = this.opts.groupByModalityLength;
    if (grouping(state.grouping) !== grouping(want && { ...want }))
      throw new LoaderStateError(
        `loader state was saved with ${grouping(state.grouping)}, this loader uses ${grouping(want)}`,
      );
    if (state.layout !== this.layout)
      throw new LoaderStateError(
        `loader state is for another mixture (layout ${state.layout}, ${this.manifestUri} has ${this.layout})`,
      );
    const total = this.manifest!.shards.reduce((a, s) => a + s.rows, 0);
    if (state.total !== total)
      throw new LoaderStateError(
        `loader state counts ${state.total} samples per epoch, the mixture has ${total}`,
      );
    this.seed = state.seed;
    this.lanes = state.lanes;
    this.shuffleWindow = state.shuffleWindow;
    // The remainder policy is not part of the order: an explicit option may change it on resume.
    this.remainder = this.opts.remainder ?? state.remainder;
    // A finished epoch resumes at the start of the next one.
    this.epoch = state.position >= state.total ? state.epoch + 1 : state.epoch;
    this.start = state.position >= state.total ? 0 : state.position;
    this.consumed = 0;
    this.pendingResume = undefined;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<LoaderSample> {
    await this.open();
    const order = this.order!;
    const source = this.source!;
    const part = this.partition();
    const count = workerCount(part);
    const epoch = this.epoch;
    const prefetchGroups = this.opts.prefetchGroups ?? LOADER_DEFAULTS.prefetchGroups;
    const lookahead = Math.max(64, prefetchGroups * SHARD_ROW_GROUP);
    const kOf = (j: number) => this.workerId + this.numWorkers * j;
    const addressAt = (j: number) => order.addressOf(rankPosition(part, kOf(j)));
    this.consumed = 0;
    for (let j = 0; j < count; j++) {
      // Every 64 samples, start loading the next distinct row groups of the coming positions.
      if (j % 64 === 0 && prefetchGroups > 0) {
        const seen = new Set<string>();
        for (let a = j; a < Math.min(count, j + lookahead) && seen.size < prefetchGroups + 1; a++) {
          const ad = addressAt(a);
          const key = `${ad.shard}/${ad.group}`;
          if (seen.has(key)) continue;
          seen.add(key);
          source.prefetch(ad.shard, ad.group);
        }
      }
      const k = kOf(j);
      const position = rankPosition(part, k);
      const at = order.addressOf(position);
      const rows = await source.rows(at.shard, at.group);
      const row = rows[at.row];
      this.consumed = k + 1;
      yield { ...row, epoch, position, rankIndex: k };
    }
  }

  /** Remote bytes read and row groups decoded so far (for tests and benchmarks). */
  ioStats(): { bytesFetched: number; groupsDecoded: number } {
    return { bytesFetched: this.source?.bytesFetched ?? 0, groupsDecoded: this.source?.groupsDecoded ?? 0 };
  }

  /** The shard URI of manifest entry i (exports and tools). */
  shardUri(i: number): string {
    return joinUri(manifestRoot(this.manifestUri), this.manifest!.shards[i].path);
  }
}
