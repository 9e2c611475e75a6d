// MixedStreamingDataset: one loader over several built mixtures with weights (or sample counts) per epoch, chosen at
// load time instead of at build time. Order = mix-order.ts over each stream's own epoch order; ranks, workers,
// remainder and resume work as in dataset.ts, and the state is a few integers per stream (mix-state.ts).

import { createHash } from 'node:crypto';
import { keyedHash64 } from '../../core/keyed-hash.ts';
import { openParquet, readRowGroups } from '../../core/parquet/read.ts';
import { joinUri } from '../../core/storage/index.ts';
import { type Manifest, manifestRoot, readManifest } from '../../manifests/manifest.ts';
import { SHARD_ROW_GROUP } from '../../manifests/shard-format.ts';
import { loaderStorage } from './dataset.ts';
import { EpochOrder } from './epoch-order.ts';
import { countsFromWeights, MixOrder, type MixSegment, streamItem } from './mix-order.ts';
import { MIX_STATE_KIND, MIX_STATE_VERSION, type MixState, MixStateError } from './mix-state.ts';
import { rankCount, workerCount } from './partition.ts';
import { RankedLoader, type RankedLoaderOptions } from './ranked-loader.ts';
import { RowGroupSource, type ShardRow } from './row-group-source.ts';
import { layoutHash } from './state.ts';

export interface MixStreamSpec {
  /** A built mixture's manifest.json (local path or s3:// URI). */
  manifest: string;
  /** Relative weight (with `epochSize`), or… */
  weight?: number;
  /** …an exact number of samples per epoch (above the stream's size it repeats, below it takes a keyed subset). */
  samples?: number;
  /** Name in states and reports (default: the manifest URI). */
  name?: string;
  /**
   * Only these sub-sources of the mixture (the rows' `source`, e.g. `llava-onevision/chartqa`; a name ending in `/`
   * takes every sub-source under it). The stream is then a keyed permutation of those rows, pass by pass.
   */
  sources?: string[];
}

export interface MixedDatasetOptions extends RankedLoaderOptions {
  seed?: number;
  /** Samples per epoch when streams have weights (default: the sum of the streams' sizes). */
  epochSize?: number;
  shuffleBuffer?: number;
  cacheDir?: string;
  cacheMaxBytes?: number;
}

/** A sample as the mixed loader yields it: the row, its stream, and where it sits in the mixed epoch. */
export interface MixedSample extends ShardRow {
  stream: number;
  epoch: number;
  position: number;
  rankIndex: number;
}

interface OpenStream {
  name: string;
  manifest: Manifest;
  size: number;
  layout: string;
  /** The stream's seed for its own epoch orders (from its index): streams never share a permutation. */
  seed: number;
  source: RowGroupSource;
  orders: Map<number, EpochOrder>;
  /** A sub-source stream: its rows (indices into the concatenated shards), and one keyed permutation per pass. */
  rows?: Int32Array;
  perms: Map<number, Int32Array>;
}

/** Passes of a stream in one epoch are numbered epoch · PASS_STRIDE + pass, keeping every pass's order distinct. */
const PASS_STRIDE = 2 ** 20;
/** Epoch orders kept per stream (a reader is in at most two passes of a stream at a time). */
const ORDERS_KEPT = 2;

/** Rows (indices into the concatenated shards) whose `source` is one of `sources` (or under a name ending in `/`). */
async function subSourceRows(
  manifestUri: string,
  m: Manifest,
  sources: readonly string[],
): Promise<Int32Array> {
  const root = manifestRoot(manifestUri);
  const matches = (src: string) => sources.some((s) => (s.endsWith('/') ? src.startsWith(s) : src === s));
  const out: number[] = [];
  let base = 0;
  for (const shard of m.shards) {
    const handle = await openParquet(joinUri(root, shard.path));
    let row = base;
    for await (const { rows } of readRowGroups(handle, {
      start: 0,
      end: handle.rowGroups.length,
      columns: ['source'],
    }))
      for (const r of rows) {
        const src =
          r.source instanceof Uint8Array ? Buffer.from(r.source).toString('utf8') : String(r.source);
        if (matches(src)) out.push(row);
        row++;
      }
    base += shard.rows;
  }
  return Int32Array.from(out);
}

/** A walk through the mix order from a position with its per-stream counts: next() costs one hash. */
class MixCursor {
  private readonly times: number[];
  constructor(
    private readonly order: MixOrder,
    public position: number,
    readonly counts: number[],
  ) {
    this.times = counts.map((_, s) => this.timeOf(s));
  }
  private timeOf(s: number): number {
    const { base } = this.order.segment;
    const left = this.order.segment.counts[s] - base[s];
    const j = this.counts[s];
    if (left <= 0 || j >= base[s] + left) return Number.POSITIVE_INFINITY;
    return (j - base[s] + this.order.jitter(s, j)) / left;
  }
  next(): { stream: number; item: number } {
    let best = 0;
    for (let s = 1; s < this.times.length; s++) if (this.times[s] < this.times[best]) best = s;
    if (this.times[best] === Number.POSITIVE_INFINITY) throw new RangeError('mix cursor past the end');
    const item = this.counts[best];
    this.counts[best] += 1;
    this.times[best] = this.timeOf(best);
    this.position += 1;
    return { stream: best, item };
  }
}

export class MixedStreamingDataset extends RankedLoader implements AsyncIterable<MixedSample> {
  private seed = 0;
  private shuffleWindow = 1;
  private streams: OpenStream[] = [];
  private segment: MixSegment | undefined;
  private start = 0;
  private startCounts: number[] = [];
  private consumed = 0;
  private opening: Promise<void> | undefined;
  private pendingResume: MixState | undefined;
  /** What the last resume did, for the caller to print (weights or world size changed). */
  resumeNote: string | undefined;

  constructor(
    readonly specs: readonly MixStreamSpec[],
    readonly opts: MixedDatasetOptions = {},
  ) {
    super(opts);
    if (!specs.length) throw new RangeError('mix: give at least one stream');
    for (const s of specs)
      if ((s.weight === undefined) === (s.samples === undefined))
        throw new RangeError(`mix: stream ${s.name ?? s.manifest} needs exactly one of weight or samples`);
  }

  open(): Promise<void> {
    this.opening ??= (async () => {
      const manifests = await Promise.all(this.specs.map((s) => readManifest(s.manifest)));
      this.seed = this.opts.seed ?? manifests[0].seed;
      const { shuffleWindow, cache } = loaderStorage(this.opts, this.lanes);
      this.shuffleWindow = shuffleWindow;
      const perLane = Math.ceil(this.shuffleWindow / SHARD_ROW_GROUP) + 1;
      this.streams = await Promise.all(
        this.specs.map(async (spec, i) => {
          const m = manifests[i];
          const name = spec.name ?? spec.manifest;
          const rows = spec.sources ? await subSourceRows(spec.manifest, m, spec.sources) : undefined;
          const size = rows ? rows.length : m.shards.reduce((a, s) => a + s.rows, 0);
          if (size === 0) throw new RangeError(`mix: stream ${name} has no samples`);
          const source = new RowGroupSource(manifestRoot(spec.manifest), m.shards, {
            rowGroupSize: SHARD_ROW_GROUP,
            decodedGroups: 1,
            cache,
          });
          // A rank meets any item of any stream, so every lane's current window of each stream may be in use.
          source.setDecodedCapacity(this.lanes * perLane + 1);
          const layout = layoutHash(m.shards);
          return {
            name,
            manifest: m,
            size,
            // A sub-source stream resumes only the same sub-sources.
            layout: spec.sources
              ? createHash('sha256')
                  .update(`${layout}\u0000${spec.sources.join('\u0000')}`)
                  .digest('hex')
                  .slice(0, 16)
              : layout,
            seed: Number(keyedHash64(this.seed, 'loader/mix/stream', String(i)) >> 12n),
            source,
            orders: new Map(),
            rows,
            perms: new Map(),
          };
        }),
      );
      const names = new Set(this.streams.map((s) => s.name));
      if (names.size !== this.streams.length) throw new RangeError('mix: two streams have the same name');
      this.setSegment({ start: 0, base: this.streams.map(() => 0), counts: this.targets() });
      if (this.pendingResume) this.applyResume(this.pendingResume);
    })();
    return this.opening;
  }

  /** Per-epoch targets from the specs: exact sample counts, or weights over the epoch size. */
  targets(): number[] {
    const sizes = this.streams.map((s) => s.size);
    const weighted = this.specs.map((s, i) => ({ s, i })).filter(({ s }) => s.weight !== undefined);
    const fixed = this.specs.map((s) => s.samples ?? 0);
    const fixedSum = fixed.reduce((a, b) => a + b, 0);
    const counts = [...fixed];
    if (weighted.length) {
      const epochSize = this.opts.epochSize ?? sizes.reduce((a, b) => a + b, 0);
      const share = countsFromWeights(
        weighted.map(({ s }) => s.weight!),
        Math.max(0, epochSize - fixedSum),
      );
      weighted.forEach(({ i }, k) => {
        counts[i] = share[k];
      });
    }
    return counts;
  }

  private setSegment(segment: MixSegment): void {
    this.segment = segment;
    this.start = segment.start;
    this.startCounts = [...segment.base];
    this.consumed = 0;
  }

  private order(): MixOrder {
    return new MixOrder(this.seed, this.epoch, this.segment!);
  }

  get total(): number {
    if (!this.segment) throw new Error('MixedStreamingDataset: call open() (or start iterating) first');
    return this.order().total;
  }

  get epochIndex(): number {
    return this.epoch;
  }

  /** Samples each stream gives this epoch (after any resume). */
  get counts(): readonly number[] {
    return this.segment!.counts;
  }

  /** The rank partition works on the segment: positions relative to its start, pad slots wrap inside it. */
  private relPartition() {
    const seg = this.segment!;
    return { ...this.partitionBase(), start: this.start - seg.start, total: this.total - seg.start };
  }

  rankLength(): number {
    return rankCount(this.relPartition());
  }

  length(): number {
    return workerCount(this.relPartition());
  }

  setEpoch(epoch: number): void {
    if (!Number.isInteger(epoch) || epoch < 0)
      throw new RangeError(`epoch must be a non-negative integer, got ${epoch}`);
    this.epoch = epoch;
    if (this.streams.length)
      this.setSegment({ start: 0, base: this.streams.map(() => 0), counts: this.targets() });
  }

  /** Every rank consumed its first k samples: the next position and each stream's count there. */
  private countsAfter(rankConsumed: number): { position: number; counts: number[] } {
    const rel = this.relPartition();
    const k = rankCount(rel);
    if (rankConsumed >= k) return { position: this.total, counts: this.order().countsAt(this.total) };
    const position = this.start + this.worldSize * rankConsumed;
    const cursor = new MixCursor(this.order(), this.start, [...this.startCounts]);
    while (cursor.position < position) cursor.next();
    return { position, counts: cursor.counts };
  }

  stateAfter(rankConsumed: number): MixState {
    return this.stateAt(this.countsAfter(rankConsumed));
  }

  /** The state at a position of the epoch whose per-stream counts the caller tracked (no walk from the start). */
  stateAt({ position, counts }: { position: number; counts: readonly number[] }): MixState {
    const seg = this.segment!;
    return {
      kind: MIX_STATE_KIND,
      version: MIX_STATE_VERSION,
      streams: this.streams.map((s) => ({ name: s.name, layout: s.layout, size: s.size })),
      seed: this.seed,
      epoch: this.epoch,
      lanes: this.lanes,
      shuffleWindow: this.shuffleWindow,
      remainder: this.remainder,
      segment: { start: seg.start, base: [...seg.base], counts: [...seg.counts] },
      position,
      streamCounts: [...counts],
      total: this.total,
      worldSizeAtSave: this.worldSize,
    };
  }

  state(): MixState {
    return this.stateAfter(this.consumed);
  }

  /**
   * Continue after `state` (any world size; other weights start a new segment). `stayInEpoch`: a state at the end
   * of the epoch stays there instead of moving to the next one (packing still holds samples of this epoch).
   */
  resume(state: MixState, opts: { stayInEpoch?: boolean } = {}): void {
    this.stayInEpoch = opts.stayInEpoch ?? false;
    if (!this.segment) {
      this.pendingResume = state;
      return;
    }
    this.applyResume(state);
  }

  private stayInEpoch = false;

  private applyResume(state: MixState): void {
    this.pendingResume = undefined;
    if (state.streams.length !== this.streams.length)
      throw new MixStateError(
        `mix state has ${state.streams.length} streams, the loader ${this.streams.length}`,
      );
    state.streams.forEach((saved, s) => {
      const now = this.streams[s];
      if (saved.name !== now.name || saved.layout !== now.layout)
        throw new MixStateError(
          `mix state stream ${s} is ${saved.name} (layout ${saved.layout}); the loader has ${now.name} (layout ${now.layout})`,
        );
    });
    this.seed = state.seed;
    this.shuffleWindow = state.shuffleWindow;
    if (state.lanes !== this.lanes)
      throw new MixStateError(`mix state was saved with ${state.lanes} lanes, the loader has ${this.lanes}`);
    const notes: string[] = [];
    if (state.worldSizeAtSave !== this.worldSize)
      notes.push(
        `world size ${state.worldSizeAtSave} → ${this.worldSize}: the same remaining samples, split anew`,
      );
    if (state.position >= state.total && !this.stayInEpoch) {
      this.epoch = state.epoch + 1;
      this.setSegment({ start: 0, base: this.streams.map(() => 0), counts: this.targets() });
      notes.push(`epoch ${state.epoch} was complete: starting epoch ${this.epoch}`);
      this.resumeNote = notes.join('; ');
      return;
    }
    this.epoch = state.epoch;
    const wanted = this.targets();
    const same = wanted.every((n, s) => n === state.segment.counts[s]);
    if (same) {
      this.segment = state.segment;
      this.start = state.position;
      this.startCounts = [...state.streamCounts];
      this.consumed = 0;
    } else {
      // New targets: a new segment from here; items already given are never given again this epoch.
      this.setSegment({ start: state.position, base: [...state.streamCounts], counts: wanted });
      const parts = this.streams.map((st, s) => {
        const more = Math.max(0, wanted[s] - state.streamCounts[s]);
        return `${st.name} ${state.segment.counts[s]} → ${wanted[s]} this epoch (${state.streamCounts[s]} given, ${more} to come)`;
      });
      notes.push(`weights changed: ${parts.join('; ')}`);
    }
    this.resumeNote = notes.length ? notes.join('; ') : undefined;
  }

  private orderOf(st: OpenStream, pass: number): EpochOrder {
    const epoch = this.epoch * PASS_STRIDE + pass;
    let o = st.orders.get(epoch);
    if (!o) {
      o = new EpochOrder(st.manifest.shards, {
        seed: st.seed,
        epoch,
        lanes: this.lanes,
        shuffleWindow: this.shuffleWindow,
        rowGroupSize: SHARD_ROW_GROUP,
      });
      st.orders.set(epoch, o);
      while (st.orders.size > ORDERS_KEPT) st.orders.delete(st.orders.keys().next().value as number);
    }
    return o;
  }

  /** Where item `item` of stream `stream` lives (pass of the stream, then its epoch order). */
  addressOf(stream: number, item: number): { shard: number; group: number; row: number } {
    const st = this.streams[stream];
    const { pass, position } = streamItem(item, st.size);
    if (!st.rows) return this.orderOf(st, pass).addressOf(position);
    let g = this.permOf(st, pass)[position];
    let shard = 0;
    while (g >= st.manifest.shards[shard].rows) g -= st.manifest.shards[shard++].rows;
    return { shard, group: Math.floor(g / SHARD_ROW_GROUP), row: g % SHARD_ROW_GROUP };
  }

  /** A sub-source stream's rows in the keyed order of one pass. */
  private permOf(st: OpenStream, pass: number): Int32Array {
    const key = this.epoch * PASS_STRIDE + pass;
    let perm = st.perms.get(key);
    if (!perm) {
      const rows = st.rows!;
      const hashes = Array.from(rows, (r) => keyedHash64(st.seed, `loader/mix/sub/epoch=${key}`, String(r)));
      const order = Array.from(rows.keys()).sort((a, b) =>
        hashes[a] < hashes[b] ? -1 : hashes[a] > hashes[b] ? 1 : a - b,
      );
      perm = Int32Array.from(order, (k) => rows[k]);
      st.perms.set(key, perm);
      while (st.perms.size > ORDERS_KEPT) st.perms.delete(st.perms.keys().next().value as number);
    }
    return perm;
  }

  /** The row of item `item` of stream `stream`. */
  async rowOf(stream: number, item: number): Promise<ShardRow> {
    const at = this.addressOf(stream, item);
    const rows = await this.streams[stream].source.rows(at.shard, at.group);
    return rows[at.row];
  }

  /** Where this epoch's current segment starts, and each stream's count there. */
  segmentStart(): { position: number; counts: number[] } {
    return { position: this.segment!.start, counts: [...this.segment!.base] };
  }

  /**
   * Every (stream, item) of the epoch from `position` (with each stream's count there) to the end, in order: the
   * global order, whatever this loader's rank.
   */
  *itemsFrom(position: number, counts: readonly number[]): Generator<{ stream: number; item: number }> {
    const cursor = new MixCursor(this.order(), position, [...counts]);
    const total = this.total;
    while (cursor.position < total) yield cursor.next();
  }

  /** The resume point (position, and each stream's count there). */
  resumePoint(): { position: number; counts: number[] } {
    return { position: this.start, counts: [...this.startCounts] };
  }

  /**
   * The (stream, item) of this rank's samples in order (every worker's; `k` is the rank index), as the cursor
   * walks the segment: rank r takes relative slots start + r + W·k; pad slots past the end wrap to the segment's
   * first positions. Reads no data: call after open().
   */
  *rankItems(): Generator<{ k: number; position: number; stream: number; item: number }> {
    const rel = this.relPartition();
    const count = rankCount(rel);
    const order = this.order();
    const seg = this.segment!;
    let cursor = new MixCursor(order, this.start, [...this.startCounts]);
    let wrapped = false;
    for (let k = 0; k < count; k++) {
      let slot = rel.start + this.rank + this.worldSize * k;
      const span = rel.total;
      if (slot >= span) {
        slot = (slot - span) % span;
        if (!wrapped) {
          cursor = new MixCursor(order, seg.start, [...seg.base]);
          wrapped = true;
        }
      }
      const position = seg.start + slot;
      if (cursor.position > position) cursor = new MixCursor(order, seg.start, [...seg.base]);
      while (cursor.position < position) cursor.next();
      const { stream, item } = cursor.next();
      yield { k, position, stream, item };
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<MixedSample> {
    await this.open();
    const epoch = this.epoch;
    this.consumed = 0;
    for (const { k, position, stream, item } of this.rankItems()) {
      if (k % this.numWorkers !== this.workerId) continue;
      const at = this.addressOf(stream, item);
      const rows = await this.streams[stream].source.rows(at.shard, at.group);
      this.consumed = k + 1;
      yield { ...rows[at.row], stream, epoch, position, rankIndex: k };
    }
  }
}
