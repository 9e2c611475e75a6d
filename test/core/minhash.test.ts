import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  estimatedJaccard,
  jaccard,
  MINHASH_PERMUTATIONS,
  minhashSignature,
  normaliseWords,
  shingles,
} from '../../core/minhash.ts';

const words = fc.array(
  fc.constantFrom(
    ...'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon phi chi psi omega'.split(
      ' ',
    ),
  ),
  { minLength: 1, maxLength: 60 },
);

describe('text MinHash', () => {
  it('normalises case, spacing and punctuation away', () => {
    assert.deepEqual(normaliseWords('  The CAT,  sat\ton the mat!! '), [
      'the',
      'cat',
      'sat',
      'on',
      'the',
      'mat',
    ]);
    assert.deepEqual(normaliseWords('Ｆｕｌｌ-width Café'), ['full', 'width', 'café']);
    const a = minhashSignature('What colour is the bus? It is red.', 3, 7);
    const b = minhashSignature('what   colour is the bus it is RED', 3, 7);
    assert.deepEqual(a, b);
  });

  it('shingles n consecutive words; a short text is one shingle, an empty one none', () => {
    assert.deepEqual([...shingles('a b c d', 3)], ['a b c', 'b c d']);
    assert.deepEqual([...shingles('a b', 3)], ['a b']);
    assert.equal(shingles(' ,. ', 3).size, 0);
    assert.deepEqual(minhashSignature('', 3, 1), new Uint8Array(MINHASH_PERMUTATIONS));
  });

  it('is a pure function of (text, ngram, seed); another seed gives another hash family', () => {
    const t = 'a red double-decker bus parked beside a stone church on a rainy afternoon';
    assert.deepEqual(minhashSignature(t, 3, 42), minhashSignature(t, 3, 42));
    assert.notDeepEqual(minhashSignature(t, 3, 42), minhashSignature(t, 3, 43));
    assert.notDeepEqual(minhashSignature(t, 3, 42), minhashSignature(t, 2, 42));
  });

  it('estimates the Jaccard similarity of the shingle sets', () => {
    fc.assert(
      fc.property(words, words, (x, y) => {
        const a = x.join(' ');
        const b = [...x.slice(0, Math.ceil(x.length / 2)), ...y].join(' ');
        const exact = jaccard(shingles(a, 2), shingles(b, 2));
        const est = estimatedJaccard(minhashSignature(a, 2, 5), minhashSignature(b, 2, 5));
        // 128 permutations: standard error ≤ sqrt(0.25/128) ≈ 0.044; 0.2 is beyond four of them.
        assert.ok(Math.abs(est - exact) < 0.2, `estimate ${est} vs exact ${exact}`);
      }),
      { numRuns: 60, seed: 17 },
    );
  });
});
