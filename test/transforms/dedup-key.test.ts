import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Turn } from '../../core/schema.ts';
import { dedupKey } from '../../transforms/dedup-key.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const conv = (...values: string[]): Turn[] =>
  values.map((value, i) => ({ from: i % 2 ? 'gpt' : 'human', value }));

describe('dedupKey', () => {
  it('is a stable sha256 hex of image digests and text', () => {
    const k = dedupKey([A], conv('<image>\nQ', 'A'));
    assert.match(k, /^[0-9a-f]{64}$/);
    assert.equal(dedupKey([A], conv('<image>\nQ', 'A')), k);
    // Pinned: a change to the key's definition must be deliberate (it changes which samples are duplicates).
    assert.equal(k, '4da5580f34a6b5fb90a70b183c01a41d67f4fb2674ec303d97c4c0d9a2b42b63');
  });

  it('differs when any part differs: an image, the image order, a turn, a role', () => {
    const base = dedupKey([A, B], conv('<image>\n<image>\nQ', 'A'));
    const variants = [
      dedupKey([B, A], conv('<image>\n<image>\nQ', 'A')),
      dedupKey([A, A], conv('<image>\n<image>\nQ', 'A')),
      dedupKey([A, B], conv('<image>\n<image>\nQ', 'A.')),
      dedupKey(
        [A, B],
        [
          { from: 'gpt', value: '<image>\n<image>\nQ' },
          { from: 'gpt', value: 'A' },
        ],
      ),
      dedupKey([A, B], conv('<image>\n<image>\nQ', 'A', 'more', 'turns')),
      dedupKey([A], conv('<image>\n<image>\nQ', 'A')),
    ];
    for (const v of variants) assert.notEqual(v, base);
    assert.equal(new Set(variants).size, variants.length);
  });

  it('is unambiguous where plain concatenation would not be', () => {
    assert.notEqual(dedupKey([], conv('ab', 'c')), dedupKey([], conv('a', 'bc')));
    assert.notEqual(dedupKey([`${A},${B}`], conv('q', 'a')), dedupKey([A, B], conv('q', 'a')));
    assert.notEqual(dedupKey([], conv('q', 'a')), dedupKey([''], conv('q', 'a')));
  });
});
