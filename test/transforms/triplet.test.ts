import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import type { RawRecord } from '../../core/schema.ts';
import { ComponentTransformOptionsSchema } from '../../transforms/component-options.ts';
import { createImagePool, inlineImageNormaliser } from '../../transforms/image-pool.ts';
import { type NormalisedRecord, normaliseRecord } from '../../transforms/normalise.ts';
import { type ProcessOutcome, processRecord } from '../../transforms/process.ts';
import {
  imageBeforeQuestion,
  makeTriplet,
  placeImageToken,
  TRIPLET_QUESTIONS,
  tripletQuestion,
} from '../../transforms/triplet.ts';

const ids = (n: number, prefix = 'recap/GCC_train_') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/**
 * Upper-tail critical value of chi-square with k degrees of freedom at the normal quantile z, by the
 * Wilson–Hilferty approximation (accurate to well under 1% for k in the hundreds).
 */
function chiSquareQuantile(k: number, z: number): number {
  const a = 2 / (9 * k);
  return k * (1 - a + z * Math.sqrt(a)) ** 3;
}

describe('the question bank', () => {
  it('has exactly 300 distinct, natural questions', () => {
    assert.equal(TRIPLET_QUESTIONS.length, 300);
    assert.equal(new Set(TRIPLET_QUESTIONS).size, 300);
    assert.equal(
      new Set(TRIPLET_QUESTIONS.map((q) => q.toLowerCase().replace(/\W+/g, ' ').trim())).size,
      300,
    );
    for (const q of TRIPLET_QUESTIONS) {
      assert.equal(q, q.trim(), `untrimmed: '${q}'`);
      assert.match(q, /^[A-Z][^\n]{8,100}[?.]$/, `not a one-line sentence or question: '${q}'`);
      assert.ok(!q.includes('<image>'), q);
    }
    assert.ok(TRIPLET_QUESTIONS.includes('What is in this photo?'));
    assert.ok(TRIPLET_QUESTIONS.includes('Describe this image in detail.'));
  });
});

describe('keyed choices', () => {
  const N = 100_000;
  const all = ids(N);

  it(`places <image> before the question for 0.5 ± 0.01 of ${N} ids`, () => {
    const before = all.filter((id) => imageBeforeQuestion(17, id)).length;
    assert.ok(Math.abs(before / N - 0.5) <= 0.01, `before fraction ${before / N}`);
  });

  it('uses the 300 questions uniformly (chi-square, 299 dof, both tails at α = 0.001)', () => {
    const counts = new Map<string, number>();
    for (const id of all) {
      const q = tripletQuestion(17, id);
      counts.set(q, (counts.get(q) ?? 0) + 1);
    }
    assert.equal(counts.size, 300, 'every question is used');
    const expected = N / 300;
    let chi2 = 0;
    for (const q of TRIPLET_QUESTIONS) chi2 += ((counts.get(q) ?? 0) - expected) ** 2 / expected;
    // z = ±3.0902 is the 0.999 / 0.001 normal quantile: upper ≈ 380, lower ≈ 229 for 299 dof. The lower tail
    // catches a choice that is too even to be random (e.g. a round-robin).
    const upper = chiSquareQuantile(299, 3.0902);
    const lower = chiSquareQuantile(299, -3.0902);
    assert.ok(upper > 375 && upper < 385 && lower > 225 && lower < 235, `critical values ${lower} ${upper}`);
    assert.ok(
      chi2 < upper && chi2 > lower,
      `chi-square ${chi2.toFixed(1)} outside (${lower.toFixed(1)}, ${upper.toFixed(1)})`,
    );
  });

  it('depends on the seed and the id, not on call order', () => {
    const sample = ids(2000);
    const forward = sample.map((id) => tripletQuestion(17, id));
    const backward = [...sample]
      .reverse()
      .map((id) => tripletQuestion(17, id))
      .reverse();
    assert.deepEqual(forward, backward);
    const otherSeed = sample.map((id) => tripletQuestion(18, id));
    const same = forward.filter((q, i) => q === otherSeed[i]).length;
    assert.ok(same < 40, `${same} of 2000 choices unchanged by a new seed (expect ~7)`);
    const placements = sample.map((id) => imageBeforeQuestion(17, id));
    const placements18 = sample.map((id) => imageBeforeQuestion(18, id));
    assert.notDeepEqual(placements, placements18);
  });

  it('the question choice and the placement are independent (different hash purposes)', () => {
    const sample = ids(20_000);
    let beforeFirstHalf = 0;
    let firstHalf = 0;
    for (const id of sample) {
      const firstHalfQuestion = TRIPLET_QUESTIONS.indexOf(tripletQuestion(5, id)) < 150;
      if (firstHalfQuestion) {
        firstHalf++;
        if (imageBeforeQuestion(5, id)) beforeFirstHalf++;
      }
    }
    assert.ok(Math.abs(beforeFirstHalf / firstHalf - 0.5) < 0.03, `${beforeFirstHalf}/${firstHalf}`);
  });
});

function recapRecord(i: number): RawRecord {
  return {
    id: `GCC_train_${String(i).padStart(9, '0')}`,
    source: 'llava-recap/cc3m',
    origin: `/data/recap/train-00000.parquet#row=${i}`,
    images: [{ bytes: new Uint8Array([1, 2, 3]) }],
    conversations: [
      { from: 'human', value: '<image>\nWhat is happening in this image? Be detailed.' },
      { from: 'gpt', value: `  A dense caption number ${i}: a red square on a teal gradient.  ` },
    ],
    meta: {},
  };
}

function normalised(raw: RawRecord): NormalisedRecord {
  const r = normaliseRecord(raw, 'recap');
  if ('reason' in r) assert.fail(r.message);
  return r;
}

describe('makeTriplet', () => {
  it('replaces the prompt with the keyed question at the keyed placement and keeps the caption', () => {
    let sawBefore = false;
    let sawAfter = false;
    for (let i = 0; i < 50; i++) {
      const rec = normalised(recapRecord(i));
      const t = makeTriplet(rec, 17);
      if ('reason' in t) assert.fail(t.message);
      const q = tripletQuestion(17, rec.id);
      const before = imageBeforeQuestion(17, rec.id);
      assert.deepEqual(t.conversations, [
        { from: 'human', value: before ? `<image>\n${q}` : `${q}\n<image>` },
        { from: 'gpt', value: `A dense caption number ${i}: a red square on a teal gradient.` },
      ]);
      assert.equal(t.id, `recap/GCC_train_${String(i).padStart(9, '0')}`);
      assert.equal(t.images, rec.images);
      if (before) sawBefore = true;
      else sawAfter = true;
    }
    assert.ok(sawBefore && sawAfter, 'both placements occur in 50 samples');
    assert.equal(placeImageToken('Q?', true), '<image>\nQ?');
    assert.equal(placeImageToken('Q?', false), 'Q?\n<image>');
  });

  it('drops a leading system turn: the triplet is the whole conversation', () => {
    const raw = recapRecord(1);
    raw.conversations.unshift({ from: 'system', value: 'You are a helpful assistant.' });
    const t = makeTriplet(normalised(raw), 3);
    if ('reason' in t) assert.fail(t.message);
    assert.deepEqual(
      t.conversations.map((c) => c.from),
      ['human', 'gpt'],
    );
  });

  it('quarantines what is not one (image, caption) pair', () => {
    const cases: [string, (r: RawRecord) => void, RegExp][] = [
      ['no image', (r) => (r.images = []), /expected 1 image, got 0/],
      ['two images', (r) => r.images.push({ bytes: new Uint8Array([4]) }), /expected 1 image, got 2/],
      ['no caption', (r) => r.conversations.pop(), /expected 1 gpt caption turn, got 0/],
      [
        'two captions',
        (r) => r.conversations.push({ from: 'human', value: 'More?' }, { from: 'gpt', value: 'More.' }),
        /got 2/,
      ],
      ['empty caption', (r) => (r.conversations[1].value = '   '), /caption is empty/],
    ];
    for (const [name, mutate, message] of cases) {
      const raw = recapRecord(7);
      mutate(raw);
      const t = makeTriplet(normalised(raw), 17);
      assert.ok('reason' in t, name);
      if ('reason' in t) {
        assert.equal(t.reason, 'not-a-caption-pair', name);
        assert.match(t.message, message, name);
        assert.equal(t.id, 'recap/GCC_train_000000007');
        assert.equal(t.origin, '/data/recap/train-00000.parquet#row=7');
      }
    }
  });
});

describe('triplets under any partitioning', () => {
  it('gives identical samples in one ordered run and in shuffled partitions on a worker pool', async () => {
    const options = ComponentTransformOptionsSchema.parse({ transform: 'triplet', seed: 99 });
    const jpeg = await sharp({ create: { width: 48, height: 32, channels: 3, background: '#3a7' } })
      .jpeg()
      .toBuffer();
    const png = await sharp({ create: { width: 48, height: 32, channels: 4, background: '#3a78' } })
      .png()
      .toBuffer();
    const records = Array.from({ length: 120 }, (_, i) => {
      const r = recapRecord(i);
      r.images = [{ bytes: i % 4 === 0 ? png : jpeg }];
      return r;
    });
    const inline = { component: 'recap', options, images: inlineImageNormaliser };
    const whole = new Map<string, ProcessOutcome>();
    for (const r of records) whole.set(r.id, await processRecord(r, inline));

    // Partitions: every third record, each processed in reverse, all three concurrently on a 2-worker pool.
    const pool = createImagePool({ size: 2 });
    try {
      const parts = [0, 1, 2].map((k) => records.filter((_, i) => i % 3 === k).reverse());
      const results = await Promise.all(
        parts.map((p) => Promise.all(p.map((r) => processRecord(r, { ...inline, images: pool })))),
      );
      const partitioned = new Map(parts.flatMap((p, k) => p.map((r, j) => [r.id, results[k][j]] as const)));
      assert.equal(partitioned.size, whole.size);
      for (const [id, outcome] of whole) {
        assert.equal(outcome.kind, 'kept', id);
        assert.deepEqual(partitioned.get(id), outcome, id);
      }
    } finally {
      await pool.close();
    }
  });
});
