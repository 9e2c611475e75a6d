// Image splicing (prepare_inputs_labels_for_multimodal) and padded batches (the reference's collator).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  collate,
  collatePacked,
  IGNORE_INDEX,
  IMAGE_SLOT_ID,
  IMAGE_TOKEN_INDEX,
  layoutSequence,
  type TokenizedConversation,
  tokensPerImageAt,
} from '../../../train-bridge/text/index.ts';

const IMG = IMAGE_TOKEN_INDEX;
const I = IGNORE_INDEX;
const conv = (ids: number[], labels: number[]): TokenizedConversation => ({
  ids: Int32Array.from(ids),
  labels: Int32Array.from(labels),
});

// Two images: ids 10 11 <img> 12 <img> 13 14, the last two learned.
const TWO_IMAGES = conv([10, 11, IMG, 12, IMG, 13, 14], [I, I, I, I, I, 13, 14]);

describe('layoutSequence', () => {
  it('splices each image at its own placeholder, labels ignored there, positions 0..n-1', () => {
    const l = layoutSequence(TWO_IMAGES, 3, 100);
    assert.equal(l.length, 11);
    assert.deepEqual(Array.from(l.tokenIds), [10, 11, -1, -1, -1, 12, -1, -1, -1, 13, 14]);
    assert.deepEqual(Array.from(l.labels), [I, I, I, I, I, I, I, I, I, 13, 14]);
    assert.deepEqual(Array.from(l.positionIds), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(l.imageSlots, [
      { image: 0, start: 2, count: 3 },
      { image: 1, start: 6, count: 3 },
    ]);
    assert.equal(IMAGE_SLOT_ID, -1);
  });

  it('truncates after expansion: a cut image keeps its first tokens, a later one has no slot', () => {
    const l = layoutSequence(TWO_IMAGES, 3, 4);
    assert.deepEqual(Array.from(l.tokenIds), [10, 11, -1, -1]);
    assert.deepEqual(l.imageSlots, [{ image: 0, start: 2, count: 2 }]);
  });

  it('leaves a text-only sequence as it is', () => {
    const l = layoutSequence(conv([5, 6, 7], [I, 6, 7]), 256, 8);
    assert.deepEqual(Array.from(l.tokenIds), [5, 6, 7]);
    assert.deepEqual(Array.from(l.labels), [I, 6, 7]);
    assert.deepEqual(l.imageSlots, []);
  });

  it('rejects mismatched ids/labels and bad sizes', () => {
    assert.throws(() => layoutSequence(conv([1, 2], [1]), 4, 8), /differ in length/);
    assert.throws(() => layoutSequence(TWO_IMAGES, 0, 8), RangeError);
    assert.throws(() => layoutSequence(TWO_IMAGES, 4, 0), RangeError);
  });
});

describe('tokensPerImageAt', () => {
  it('is (R/64)²: 256 at 1024², 16 at 256²', () => {
    assert.equal(tokensPerImageAt(1024), 256);
    assert.equal(tokensPerImageAt(256), 16);
    assert.throws(() => tokensPerImageAt(1000), RangeError);
  });
});

describe('collate', () => {
  const PAD = 151643;
  it('right-pads with the pad id, IGNORE_INDEX labels, position 0 and mask 0; slots per sample', () => {
    const a = layoutSequence(TWO_IMAGES, 2, 100); // length 9
    const b = layoutSequence(conv([7, 8, 9], [I, 8, 9]), 2, 100); // length 3
    const batch = collate([a, b], PAD);
    assert.equal(batch.batch, 2);
    assert.equal(batch.seqLen, 9);
    const row = (x: ArrayLike<number>, r: number) => Array.from(x).slice(r * 9, (r + 1) * 9);
    assert.deepEqual(row(batch.tokenIds, 0), [10, 11, -1, -1, 12, -1, -1, 13, 14]);
    assert.deepEqual(row(batch.tokenIds, 1), [7, 8, 9, PAD, PAD, PAD, PAD, PAD, PAD]);
    assert.deepEqual(row(batch.labels, 1), [I, 8, 9, I, I, I, I, I, I]);
    assert.deepEqual(row(batch.positionIds, 1), [0, 1, 2, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(row(batch.attentionMask, 0), [1, 1, 1, 1, 1, 1, 1, 1, 1]);
    assert.deepEqual(row(batch.attentionMask, 1), [1, 1, 1, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(batch.imageSlots, [
      { sample: 0, member: 0, image: 0, start: 2, count: 2 },
      { sample: 0, member: 0, image: 1, start: 5, count: 2 },
    ]);
  });

  it('rounds the sequence length up to padToMultipleOf', () => {
    const batch = collate([layoutSequence(conv([7, 8, 9], [I, 8, 9]), 2, 100)], PAD, { padToMultipleOf: 8 });
    assert.equal(batch.seqLen, 8);
    assert.deepEqual(Array.from(batch.attentionMask), [1, 1, 1, 0, 0, 0, 0, 0]);
  });

  it('rejects an empty batch', () => {
    assert.throws(() => collate([], PAD), /at least one/);
    assert.throws(() => collatePacked([[]], PAD), /at least one/);
  });

  it('packs whole samples into a row: positions restart, one segment per sample, slots at their row offset', () => {
    const a = layoutSequence(TWO_IMAGES, 2, 100); // length 9
    const b = layoutSequence(conv([7, 8, 9], [I, 8, 9]), 2, 100); // length 3
    const c = layoutSequence(conv([5, IMG, 6], [I, I, 6]), 2, 100); // length 4, image at 1
    const batch = collatePacked([[b, c], [a]], PAD);
    assert.equal(batch.seqLen, 9);
    const row = (x: ArrayLike<number>, r: number) => Array.from(x).slice(r * 9, (r + 1) * 9);
    assert.deepEqual(row(batch.tokenIds, 0), [7, 8, 9, 5, -1, -1, 6, PAD, PAD]);
    assert.deepEqual(row(batch.labels, 0), [I, 8, 9, I, I, I, 6, I, I]);
    assert.deepEqual(row(batch.positionIds, 0), [0, 1, 2, 0, 1, 2, 3, 0, 0]);
    assert.deepEqual(row(batch.segmentIds, 0), [0, 0, 0, 1, 1, 1, 1, -1, -1]);
    assert.deepEqual(row(batch.segmentIds, 1), [2, 2, 2, 2, 2, 2, 2, 2, 2]);
    assert.deepEqual(row(batch.attentionMask, 0), [1, 1, 1, 1, 1, 1, 1, 0, 0]);
    assert.deepEqual(batch.imageSlots, [
      { sample: 0, member: 1, image: 0, start: 4, count: 2 },
      { sample: 1, member: 0, image: 0, start: 2, count: 2 },
      { sample: 1, member: 0, image: 1, start: 5, count: 2 },
    ]);
    // Unpacked rows are segments 0, 1, … by row.
    assert.deepEqual(Array.from(collate([b, c], PAD).segmentIds), [0, 0, 0, -1, 1, 1, 1, 1]);
  });
});
