import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Turn } from '../../core/schema.ts';
import { contaminationChecker, questionNgrams, questionText } from '../../transforms/contamination.ts';

const conv = (q: string, a = 'An answer that never counts.'): Turn[] => [
  { from: 'human', value: `<image>\n${q}` },
  { from: 'gpt', value: a },
];

describe('decontamination check', () => {
  it('takes n-grams of the normalised human turns only', () => {
    assert.equal(questionText(conv('What is it?')).trim(), 'What is it?');
    assert.equal(questionNgrams(conv('What is it?'), 4).size, 0, 'shorter than n: no n-gram');
    assert.deepEqual(questionNgrams(conv('What IS, it?'), 3), questionNgrams(conv('what is it'), 3));
    assert.equal(questionNgrams(conv('a b c d e'), 3).size, 3);
  });

  it('flags a shared n-gram or a near image, naming the first set in spec order', () => {
    const e1 = [...questionNgrams(conv('how many red buses are parked outside'), 4)];
    const check = contaminationChecker({
      sets: [
        {
          name: 'first',
          ngram: 4,
          maxDistance: 4,
          records: 1,
          skipped: 0,
          images: ['00000000ffffffff'],
          ngrams: [],
        },
        { name: 'second', ngram: 4, maxDistance: 4, records: 1, skipped: 0, images: [], ngrams: e1 },
      ],
    });
    assert.equal(check(conv('Tell me: how many red buses are there?'), []), 'second');
    assert.equal(check(conv('How many red cars are there?'), []), undefined);
    // 3 bits from the evaluation image: within 4; 5 bits: not.
    assert.equal(check(conv('How many red buses are parked outside?'), ['00000007ffffffff']), 'first');
    assert.equal(check(conv('Anything'), ['0000001fffffffff']), undefined);
  });
});
