// PackedDataset: the loader's keyed order (one built mixture or a load-time mix) packed into sequences of at most
// `capacity` tokens (packing.ts), split between ranks pack by pack. Packs are a function of the global order only,
// so every rank computes the same packs and takes packs r, r+W, …; the state is the packer's input cursor (as a mix
// state) plus the window's pending samples, so resume — with another world size or capacity too — yields exactly
// the samples not yet consumed, each once (docs/loader.md, "Packing").
import { z } from 'zod';
import { SHARD_ROW_GROUP } from '../../manifests/shard-format.ts';
import { MixStateSchema } from './mix-state.ts';
import { type MixedDatasetOptions, MixedStreamingDataset, type MixStreamSpec } from './mixed-dataset.ts';
import { checkPackerOptions, type Pack, type PackerState, packFirstFit } from './packing.ts';
import type { RemainderPolicy } from './partition.ts';
import type { ShardRow } from './row-group-source.ts';
import { readTokenCounts } from './token-counts.ts';

export interface SampleRef {
  stream: number;
  item: number;
}

export const PACKED_STATE_KIND = 'mixforge.packed-state';

export const PackedStateSchema = z.strictObject({
  kind: z.literal(PACKED_STATE_KIND),
  version: z.literal(1),
  /** The order at the packer's input cursor (every sample before it was consumed or is pending). */
  mix: MixStateSchema,
  /** Samples read into the window but not yet packed, in order. */
  pending: z.array(z.strictObject({ stream: z.number().int().min(0), item: z.number().int().min(0) })),
  capacity: z.number().int().min(1),
  window: z.number().int().min(1),
  worldSizeAtSave: z.number().int().min(1),
});
export type PackedState = z.infer<typeof PackedStateSchema>;

export interface PackedDatasetOptions extends Omit<MixedDatasetOptions, 'workerId' | 'numWorkers'> {
  /** Tokens per packed sequence. */
  capacity: number;
  /** Samples the packer looks ahead over (first-fit window). */
  window?: number;
  /** Resolution whose token counts (mixforge tokens) give the sample lengths. */
  resolution: number;
}

export interface PackedBatch {
  epoch: number;
  samples: (ShardRow & { stream: number })[];
  tokens: number;
  /** This rank's pack index (k-th pack of the rank since the resume point). */
  rankIndex: number;
  /** The state once every rank consumed this round of packs: where a run that trained on this pack resumes. */
  state: PackedState;
}

/** One global pack, the packer's state after it, and the order's position and per-stream counts there. */
interface GlobalPack {
  pack: Pack<SampleRef>;
  after: PackerState<SampleRef>;
  at: { position: number; counts: number[] };
}

export const PACKING_DEFAULTS = { window: 64 };

export class PackedDataset implements AsyncIterable<PackedBatch> {
  private readonly mix: MixedStreamingDataset;
  readonly rank: number;
  readonly worldSize: number;
  private readonly remainder: RemainderPolicy;
  private readonly capacity: number;
  private readonly window: number;
  private counts: Uint32Array[][] = [];
  private startPending: { ref: SampleRef; length: number }[] = [];
  private consumed = 0;
  private opening: Promise<void> | undefined;
  private pendingResume: PackedState | undefined;

  constructor(
    readonly specs: readonly MixStreamSpec[],
    readonly opts: PackedDatasetOptions,
  ) {
    this.rank = opts.rank ?? 0;
    this.worldSize = opts.worldSize ?? 1;
    this.remainder = opts.remainder ?? 'pad';
    this.capacity = opts.capacity;
    this.window = opts.window ?? PACKING_DEFAULTS.window;
    checkPackerOptions({ capacity: this.capacity, window: this.window });
    if (!Number.isInteger(this.rank) || this.rank < 0 || this.rank >= this.worldSize)
      throw new RangeError(`packing: rank ${this.rank} not in [0, ${this.worldSize})`);
    // One global order: every rank walks all of it and keeps its own packs.
    this.mix = new MixedStreamingDataset(specs, {
      ...opts,
      rank: 0,
      worldSize: 1,
      workerId: 0,
      numWorkers: 1,
    });
  }

  open(): Promise<void> {
    this.opening ??= (async () => {
      await this.mix.open();
      this.counts = await Promise.all(
        this.specs.map((s) => readTokenCounts(s.manifest, this.opts.resolution)),
      );
      if (this.pendingResume) this.applyResume(this.pendingResume);
    })();
    return this.opening;
  }

  /** What the last resume did (weights, world size or capacity changed), for the caller to print. */
  resumeNote: string | undefined;

  lengthOf(ref: SampleRef): number {
    const at = this.mix.addressOf(ref.stream, ref.item);
    return this.counts[ref.stream][at.shard][at.group * SHARD_ROW_GROUP + at.row];
  }

  /** Global packs from a packer state at `from` (position + counts) to the end of the epoch. */
  private *globalPacks(
    from: { position: number; counts: number[] },
    pending: { ref: SampleRef; length: number }[],
  ): Generator<GlobalPack> {
    const items = this.mix.itemsFrom(from.position, from.counts);
    // Each stream's items given before the packer's input cursor: the mix state there, without a second walk.
    const counts = [...from.counts];
    let expected = 0;
    const input = (i: number) => {
      if (i !== expected++) throw new Error('packing: input read out of order');
      const next = items.next();
      if (next.done) throw new Error('packing: input ended early');
      counts[next.value.stream] = next.value.item + 1;
      return { ref: next.value, length: this.lengthOf(next.value) };
    };
    const end = this.mix.total - from.position;
    const packs = packFirstFit(
      input,
      end,
      { capacity: this.capacity, window: this.window },
      { cursor: 0, pending },
    );
    for (const { pack, after } of packs)
      yield { pack, after, at: { position: from.position + after.cursor, counts: [...counts] } };
  }

  /** Packs from the resume point to the end of the epoch (all ranks together). */
  globalPackCount(): number {
    let n = 0;
    for (const _ of this.globalPacks(this.mix.resumePoint(), this.startPending)) n++;
    return n;
  }

  /** Packs this rank serves from the resume point (pad: ⌈K/W⌉, the last round's gaps wrap to the epoch's first). */
  rankLength(): number {
    const k = this.globalPackCount();
    return this.remainder === 'drop' ? Math.floor(k / this.worldSize) : Math.ceil(k / this.worldSize);
  }

  /**
   * This rank's packs in order: global packs r, r+W, …, then (pad) the epoch's first packs for the gaps; each with
   * the state once every rank consumed its round (global pack W·(k+1) − 1, or the epoch's end).
   */
  private *rankPacks(): Generator<{ k: number; pack: Pack<SampleRef>; state: PackedState }> {
    const count = this.rankLength();
    const W = this.worldSize;
    const start = this.mix.resumePoint();
    let last: Omit<GlobalPack, 'pack'> = { after: { cursor: 0, pending: this.startPending }, at: start };
    let k = 0;
    let g = 0;
    let held: Pack<SampleRef> | undefined;
    for (const step of this.globalPacks(start, this.startPending)) {
      if (k >= count) return;
      if (g === this.rank + W * k) held = step.pack;
      last = step;
      if (++g === W * (k + 1) && held) {
        yield { k: k++, pack: held, state: this.packedState(step) };
        held = undefined;
      }
    }
    // The epoch's packs ended inside a round: every rank's share is done.
    const end = this.packedState(last);
    if (held && k < count) yield { k: k++, pack: held, state: end };
    // Pad slots past the end (slot ≥ K) take pack slot − K from the segment start: the same whatever the resume.
    const packs = g;
    let h = 0;
    for (const { pack } of this.globalPacks(this.mix.segmentStart(), [])) {
      if (k >= count) return;
      if (h++ === this.rank + W * k - packs) yield { k: k++, pack, state: end };
    }
  }

  private packedState({ after, at }: Omit<GlobalPack, 'pack'>): PackedState {
    return {
      kind: PACKED_STATE_KIND,
      version: 1,
      mix: { ...this.mix.stateAt(at), worldSizeAtSave: this.worldSize },
      pending: after.pending.map((p) => p.ref),
      capacity: this.capacity,
      window: this.window,
      worldSizeAtSave: this.worldSize,
    };
  }

  /** The state after every rank consumed its first k packs (ranks step in lockstep). */
  stateAfter(rankConsumed: number): PackedState {
    const target = this.worldSize * rankConsumed;
    const start = this.mix.resumePoint();
    let state: Omit<GlobalPack, 'pack'> = { after: { cursor: 0, pending: this.startPending }, at: start };
    let g = 0;
    if (target > 0)
      for (const step of this.globalPacks(start, this.startPending)) {
        state = step;
        if (++g >= target) break;
      }
    return this.packedState(state);
  }

  /** The epoch being packed. */
  get epoch(): number {
    return this.mix.epochIndex;
  }

  /** Start epoch `epoch` from its beginning (the trainer moves on after an epoch's last pack). */
  setEpoch(epoch: number): void {
    this.mix.setEpoch(epoch);
    this.startPending = [];
    this.consumed = 0;
    this.resumeNote = undefined;
  }

  state(): PackedState {
    return this.stateAfter(this.consumed);
  }

  resume(state: PackedState): void {
    if (!this.counts.length) {
      this.pendingResume = state;
      return;
    }
    this.applyResume(state);
  }

  private applyResume(state: PackedState): void {
    this.pendingResume = undefined;
    const done = state.mix.position >= state.mix.total && state.pending.length === 0;
    this.mix.resume(state.mix, { stayInEpoch: !done });
    this.startPending = done ? [] : state.pending.map((ref) => ({ ref, length: this.lengthOf(ref) }));
    this.consumed = 0;
    const notes = this.mix.resumeNote ? [this.mix.resumeNote] : [];
    if (state.capacity !== this.capacity || state.window !== this.window)
      notes.push(
        `packing ${state.capacity}/${state.window} → ${this.capacity}/${this.window} (capacity/window): the remaining samples are packed anew`,
      );
    this.resumeNote = notes.length ? notes.join('; ') : undefined;
  }

  /** This rank's packs as (stream, item) refs, without reading any row (tests, planning). */
  *rankRefs(): Generator<{ k: number; refs: SampleRef[]; tokens: number }> {
    for (const { k, pack } of this.rankPacks()) yield { k, refs: pack.refs, tokens: pack.tokens };
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<PackedBatch> {
    await this.open();
    this.consumed = 0;
    const epoch = this.mix.epochIndex;
    for (const { k, pack, state } of this.rankPacks()) {
      const samples = await Promise.all(
        pack.refs.map(async (ref) => ({
          ...(await this.mix.rowOf(ref.stream, ref.item)),
          stream: ref.stream,
        })),
      );
      this.consumed = k + 1;
      yield { epoch, samples, tokens: pack.tokens, rankIndex: k, state };
    }
  }
}
