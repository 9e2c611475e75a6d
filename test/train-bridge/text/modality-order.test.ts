// group_by_modality_length: one modality per megabatch, sorted longest first inside it, every sample once,
// and the same order for the same (seed, epoch, samples).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { groupByModalityLength, modalityLength } from '../../../train-bridge/text/index.ts';

// 22 image samples and 13 text-only ones, lengths varied.
const SAMPLES = Array.from({ length: 35 }, (_, i) => ({
  id: `s/${i}`,
  modalityLength: (i < 22 ? 1 : -1) * (1 + ((i * 37) % 50)),
}));
const OPTS = { batchSize: 2, worldSize: 2, seed: 17, epoch: 0 };

describe('modalityLength', () => {
  it('counts words over all turns as Python split() does, negative without images', () => {
    const turns = [{ value: '<image>\nWhat is  this?' }, { value: ' A\tred\x1cbus. ' }];
    assert.equal(modalityLength(turns, true), 7);
    assert.equal(modalityLength(turns, false), -7);
  });
});

describe('groupByModalityLength', () => {
  it('is a permutation; full megabatches hold one modality, longest first per chunk of the deal', () => {
    const order = groupByModalityLength(SAMPLES, OPTS);
    assert.deepEqual(
      [...order].sort((a, b) => a - b),
      SAMPLES.map((_, i) => i),
    );
    // 22 image → 5 full megabatches of 4 + 2 left; 13 text → 3 full + 1 left; leftovers (3) go last.
    const full = order.slice(0, 32);
    for (let m = 0; m < 8; m++) {
      const mb = full.slice(m * 4, m * 4 + 4);
      const signs = new Set(mb.map((i) => Math.sign(SAMPLES[i].modalityLength)));
      assert.equal(signs.size, 1, `megabatch ${m} mixes modalities`);
    }
    assert.deepEqual(
      order.slice(32),
      [...order.slice(32)].sort((a, b) => a - b),
    );
  });

  it('is deterministic for (seed, epoch); full megabatches do not depend on input order; seeds/epochs differ', () => {
    const a = groupByModalityLength(SAMPLES, OPTS);
    assert.deepEqual(groupByModalityLength(SAMPLES, OPTS), a);
    const reversed = [...SAMPLES].reverse();
    // The leftover megabatch is in dataset-index order, as the reference's sorted(additional_batch).
    const b = groupByModalityLength(reversed, OPTS).map((i) => reversed[i].id);
    assert.deepEqual(
      b.slice(0, 32),
      a.slice(0, 32).map((i) => SAMPLES[i].id),
    );
    assert.notDeepEqual(groupByModalityLength(SAMPLES, { ...OPTS, seed: 18 }), a);
    assert.notDeepEqual(groupByModalityLength(SAMPLES, { ...OPTS, epoch: 1 }), a);
  });

  it('with one modality only, is the length-grouped order (sorted longest first per megabatch chunk)', () => {
    const images = SAMPLES.slice(0, 8);
    const order = groupByModalityLength(images, { ...OPTS, worldSize: 1, batchSize: 4 });
    for (const mb of [order.slice(0, 4), order.slice(4, 8)]) {
      const lengths = mb.map((i) => images[i].modalityLength);
      assert.deepEqual(
        lengths,
        [...lengths].sort((x, y) => y - x),
      );
    }
  });

  it('rejects a zero length and bad batch sizes', () => {
    assert.throws(() => groupByModalityLength([{ id: 'x', modalityLength: 0 }], OPTS), /sample x/);
    assert.throws(() => groupByModalityLength(SAMPLES, { ...OPTS, batchSize: 0 }), RangeError);
  });
});
