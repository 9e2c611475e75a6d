// Pads laid-out sequences into one right-padded batch with an attention mask, as the reference's collator and
// `prepare_inputs_labels_for_multimodal` do: pad id, IGNORE_INDEX labels, position 0 and mask 0 past each end.
import { IGNORE_INDEX } from './constants.ts';
import type { SequenceLayout } from './layout.ts';

export interface BatchImageSlot {
  sample: number;
  image: number;
  /** Position in the sample's row (not the flattened batch). */
  start: number;
  count: number;
}

export interface TextBatch {
  batch: number;
  seqLen: number;
  /** batch × seqLen, row-major; -1 at image positions, padId past each sequence's end. */
  tokenIds: Int32Array;
  labels: Int32Array;
  positionIds: Int32Array;
  /** 1 on real positions (text and image), 0 on padding. */
  attentionMask: Uint8Array;
  imageSlots: BatchImageSlot[];
}

export interface CollateOptions {
  /** Round seqLen up to a multiple of this (kernel tiles); default 1. */
  padToMultipleOf?: number;
}

export function collate(
  layouts: readonly SequenceLayout[],
  padId: number,
  opts: CollateOptions = {},
): TextBatch {
  if (layouts.length === 0) throw new RangeError('collate needs at least one sequence');
  const multiple = opts.padToMultipleOf ?? 1;
  if (!Number.isInteger(multiple) || multiple <= 0)
    throw new RangeError(`padToMultipleOf must be a positive integer, got ${multiple}`);
  const longest = Math.max(...layouts.map((l) => l.length));
  const seqLen = Math.max(multiple, Math.ceil(longest / multiple) * multiple);
  const batch = layouts.length;
  const tokenIds = new Int32Array(batch * seqLen).fill(padId);
  const labels = new Int32Array(batch * seqLen).fill(IGNORE_INDEX);
  const positionIds = new Int32Array(batch * seqLen);
  const attentionMask = new Uint8Array(batch * seqLen);
  const imageSlots: BatchImageSlot[] = [];
  layouts.forEach((l, b) => {
    const row = b * seqLen;
    tokenIds.set(l.tokenIds.subarray(0, l.length), row);
    labels.set(l.labels.subarray(0, l.length), row);
    positionIds.set(l.positionIds.subarray(0, l.length), row);
    attentionMask.fill(1, row, row + l.length);
    for (const s of l.imageSlots)
      imageSlots.push({ sample: b, image: s.image, start: s.start, count: s.count });
  });
  return { batch, seqLen, tokenIds, labels, positionIds, attentionMask, imageSlots };
}
