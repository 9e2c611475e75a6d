// Pads laid-out sequences into one right-padded batch with an attention mask, as the reference's collator and
// `prepare_inputs_labels_for_multimodal` do: pad id, IGNORE_INDEX labels, position 0 and mask 0 past each end.
// Packed rows (several whole samples one after another) are the same layout with a segment id per sample:
// positions restart at 0 for each sample, and attention and the next-token shift stop at segment boundaries.
import { IGNORE_INDEX } from './constants.ts';
import type { SequenceLayout } from './layout.ts';

export interface BatchImageSlot {
  /** The batch row. */
  sample: number;
  /** The sample's index inside its row (0 unless the row is a pack). */
  member: number;
  image: number;
  /** Position in the row (not the flattened batch). */
  start: number;
  count: number;
}

export interface TextBatch {
  batch: number;
  seqLen: number;
  /** batch × seqLen, row-major; -1 at image positions, padId past each sequence's end. */
  tokenIds: Int32Array;
  labels: Int32Array;
  /** Rotary positions: 0, 1, … within each sample, 0 on padding. */
  positionIds: Int32Array;
  /** 1 on real positions (text and image), 0 on padding. */
  attentionMask: Uint8Array;
  /** The sample each position belongs to (numbered across the batch), −1 on padding: attention stays inside one. */
  segmentIds: Int32Array;
  imageSlots: BatchImageSlot[];
}

export interface CollateOptions {
  /** Round seqLen up to a multiple of this (kernel tiles); default 1. */
  padToMultipleOf?: number;
}

/** One sample per row, right-padded to the longest. */
export function collate(
  layouts: readonly SequenceLayout[],
  padId: number,
  opts: CollateOptions = {},
): TextBatch {
  return collatePacked(
    layouts.map((l) => [l]),
    padId,
    opts,
  );
}

/** One pack per row: its samples back to back (each its own segment), rows right-padded to the longest. */
export function collatePacked(
  packs: readonly (readonly SequenceLayout[])[],
  padId: number,
  opts: CollateOptions = {},
): TextBatch {
  if (packs.length === 0 || packs.some((p) => p.length === 0))
    throw new RangeError('collate needs at least one sequence (and one per packed row)');
  const multiple = opts.padToMultipleOf ?? 1;
  if (!Number.isInteger(multiple) || multiple <= 0)
    throw new RangeError(`padToMultipleOf must be a positive integer, got ${multiple}`);
  const rowLength = (p: readonly SequenceLayout[]) => p.reduce((a, l) => a + l.length, 0);
  const longest = Math.max(...packs.map(rowLength));
  const seqLen = Math.max(multiple, Math.ceil(longest / multiple) * multiple);
  const batch = packs.length;
  const tokenIds = new Int32Array(batch * seqLen).fill(padId);
  const labels = new Int32Array(batch * seqLen).fill(IGNORE_INDEX);
  const positionIds = new Int32Array(batch * seqLen);
  const attentionMask = new Uint8Array(batch * seqLen);
  const segmentIds = new Int32Array(batch * seqLen).fill(-1);
  const imageSlots: BatchImageSlot[] = [];
  let segment = 0;
  packs.forEach((pack, b) => {
    let at = b * seqLen;
    pack.forEach((l, member) => {
      tokenIds.set(l.tokenIds.subarray(0, l.length), at);
      labels.set(l.labels.subarray(0, l.length), at);
      positionIds.set(l.positionIds.subarray(0, l.length), at);
      attentionMask.fill(1, at, at + l.length);
      segmentIds.fill(segment++, at, at + l.length);
      const offset = at - b * seqLen;
      for (const s of l.imageSlots)
        imageSlots.push({ sample: b, member, image: s.image, start: offset + s.start, count: s.count });
      at += l.length;
    });
  });
  return { batch, seqLen, tokenIds, labels, positionIds, attentionMask, segmentIds, imageSlots };
}
