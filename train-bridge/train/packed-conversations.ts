// Packed micro-batches for FastVLM's next-token objective: each row is one pack of the PackedDataset (whole samples
// of the keyed order, first-fit into at most `capacity` tokens, images spliced where `<image>` stands), rows
// right-padded to the longest. Each sample is its own segment (attention and the label shift stop at its end, RoPE
// positions restart at 0), so a pack trains exactly as its samples would padded. The state after each batch is the
// packed loader's, which counts samples: a resume yields exactly the samples not yet consumed.
import type { PackedBatch, PackedDataset, PackedState } from '../loader/packed-dataset.ts';
import type { ShardRow } from '../loader/row-group-source.ts';
import { collatePacked, type SequenceLayout } from '../text/index.ts';
import {
  type ConversationBatch,
  type ConversationStreamOptions,
  decodeSlotImages,
  layoutConversation,
} from './conversations.ts';
import { PixelBuffers } from './sample-stream.ts';

export interface PackedConversationBatch extends ConversationBatch<PackedState> {
  /** Token positions the rows offered (rows × capacity): text.attentionMask's sum over this is the efficiency. */
  capacity: number;
}

export class PackedConversationStream {
  /** Why samples were skipped, with counts (e.g. "turns do not alternate"). */
  readonly skipReasons = new Map<string, number>();
  skipped = 0;
  private iterator: AsyncIterator<PackedBatch> | undefined;
  private usedThisEpoch = 0;
  private readonly pixels: PixelBuffers;
  private readonly capacity: number;

  /** `packed` must be open; `resumeFrom` continues after a checkpoint's packed state. */
  constructor(
    private readonly packed: PackedDataset,
    private readonly opts: ConversationStreamOptions & { capacity: number },
    resumeFrom?: PackedState,
  ) {
    this.pixels = new PixelBuffers(opts);
    this.capacity = opts.capacity;
    if (resumeFrom) packed.resume(resumeFrom);
    else packed.setEpoch(0);
  }

  /** Where the next batch would start (before any batch: the resume point). */
  state(): PackedState {
    return this.packed.state();
  }

  /** The next pack of the loader, moving on to the next epoch at the end of one. */
  private async nextPack(): Promise<PackedBatch> {
    for (;;) {
      this.iterator ??= this.packed[Symbol.asyncIterator]();
      const r = await this.iterator.next();
      if (!r.done) return r.value;
      if (this.usedThisEpoch === 0)
        throw new Error(`${this.packed.specs[0]?.manifest}: a whole epoch held no conversation to train on`);
      this.usedThisEpoch = 0;
      this.packed.setEpoch(this.packed.epoch + 1);
      this.iterator = undefined;
    }
  }

  /** One pack laid out: every sample the text path takes (the others counted as skipped), cut at the capacity. */
  private layoutPack(pack: PackedBatch): { sample: ShardRow; layout: SequenceLayout }[] {
    const maxLength = Math.min(this.opts.maxLength, this.capacity);
    const out: { sample: ShardRow; layout: SequenceLayout }[] = [];
    for (const sample of pack.samples) {
      const laid = layoutConversation(sample, { ...this.opts, maxLength });
      if ('refused' in laid) {
        this.skipped++;
        this.skipReasons.set(laid.refused, (this.skipReasons.get(laid.refused) ?? 0) + 1);
      } else out.push({ sample, layout: laid });
    }
    const length = out.reduce((a, p) => a + p.layout.length, 0);
    if (length > this.capacity)
      throw new Error(
        `pack ${pack.rankIndex} (${out.map((p) => p.sample.id).join(', ')}) holds ${length} tokens, over the ` +
          `capacity ${this.capacity}: the token counts do not match this run's text path (rerun mixforge tokens ` +
          'with its tokenizer and --image-token-position)',
      );
    return out;
  }

  /** The next n packs as one batch (a pack whose every sample was refused is passed over). */
  async next(n: number): Promise<PackedConversationBatch> {
    const rows: { sample: ShardRow; layout: SequenceLayout }[][] = [];
    let state: PackedState | undefined;
    while (rows.length < n) {
      const pack = await this.nextPack();
      state = pack.state;
      const row = this.layoutPack(pack);
      if (row.length === 0) continue;
      this.usedThisEpoch += row.length;
      rows.push(row);
    }
    const text = collatePacked(
      rows.map((r) => r.map((p) => p.layout)),
      this.opts.tokenizer.padId,
    );
    const pixels = await decodeSlotImages(
      this.pixels,
      this.opts.resolution,
      text.imageSlots.map((slot) => ({ sample: rows[slot.sample]![slot.member]!.sample, image: slot.image })),
    );
    return {
      text,
      pixels,
      images: text.imageSlots.length,
      sampleIds: rows.flatMap((r) => r.map((p) => p.sample.id)),
      loaderState: state!,
      skipped: this.skipped,
      capacity: n * this.capacity,
    };
  }

  close(): Promise<void> {
    return this.pixels.close();
  }
}
