// Splices images into a tokenized conversation as `prepare_inputs_labels_for_multimodal` does: each
// IMAGE_TOKEN_INDEX becomes that image's projected tokens (labels ignored), then the sequence is cut at max length.
import { IGNORE_INDEX, IMAGE_TOKEN_INDEX } from './constants.ts';
import type { TokenizedConversation } from './conversation.ts';

/** Where image `image` (its index among the sample's images) fills `count` positions from `start`. */
export interface ImageSlot {
  image: number;
  start: number;
  /** tokensPerImage, or fewer when the max length cut the image: then its first `count` projected tokens are used. */
  count: number;
}

export interface SequenceLayout {
  length: number;
  /** Token ids; -1 at image positions (their embeddings come from the projector). */
  tokenIds: Int32Array;
  labels: Int32Array;
  /** 0..length-1, as the reference's right-padded batches have. */
  positionIds: Int32Array;
  imageSlots: ImageSlot[];
}

/** Value in tokenIds where an image's projected token goes. */
export const IMAGE_SLOT_ID = -1;

/**
 * Expands every IMAGE_TOKEN_INDEX of `t` into `tokensPerImage` positions, image k at the k-th placeholder, and
 * truncates to `maxLength` (the reference truncates again after expansion, at `tokenizer_model_max_length`).
 * An image whose placeholder was cut away by the first truncation has no slot.
 */
export function layoutSequence(
  t: TokenizedConversation,
  tokensPerImage: number,
  maxLength: number,
): SequenceLayout {
  if (!Number.isInteger(tokensPerImage) || tokensPerImage <= 0)
    throw new RangeError(`tokensPerImage must be a positive integer, got ${tokensPerImage}`);
  if (!Number.isInteger(maxLength) || maxLength <= 0)
    throw new RangeError(`maxLength must be a positive integer, got ${maxLength}`);
  if (t.ids.length !== t.labels.length)
    throw new RangeError(`ids and labels differ in length: ${t.ids.length} vs ${t.labels.length}`);
  let images = 0;
  for (const id of t.ids) if (id === IMAGE_TOKEN_INDEX) images++;
  const length = Math.min(t.ids.length + images * (tokensPerImage - 1), maxLength);
  const tokenIds = new Int32Array(length);
  const labels = new Int32Array(length);
  const imageSlots: ImageSlot[] = [];
  let at = 0;
  let image = 0;
  for (let i = 0; i < t.ids.length && at < length; i++) {
    if (t.ids[i] === IMAGE_TOKEN_INDEX) {
      const count = Math.min(tokensPerImage, length - at);
      tokenIds.fill(IMAGE_SLOT_ID, at, at + count);
      labels.fill(IGNORE_INDEX, at, at + count);
      imageSlots.push({ image: image++, start: at, count });
      at += count;
    } else {
      tokenIds[at] = t.ids[i];
      labels[at] = t.labels[i];
      at++;
    }
  }
  const positionIds = new Int32Array(length);
  for (let i = 0; i < length; i++) positionIds[i] = i;
  return { length, tokenIds, labels, positionIds, imageSlots };
}
