import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { keyedHash64 } from '../../core/keyed-hash.ts';
import {
  bandGroupPairs,
  hamming64,
  hammingLsh,
  hammingPairs,
  hammingRecall,
  hash64FromHex,
  tableKey,
  tablesForRecall,
  textBandKeys,
} from '../../core/lsh.ts';

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const halves = (x: bigint) => ({ hi: Number(x >> 32n), lo: Number(x & 0xffffffffn) });
const popcount = (x: bigint) => x.toString(2).replaceAll('0', '').length;

describe('LSH', () => {
  it('hamming64 counts the differing bits of two 64-bit hashes', () => {
    fc.assert(
      fc.property(u64, u64, (a, b) => {
        const x = halves(a);
        const y = halves(b);
        assert.equal(hamming64(x.hi, x.lo, y.hi, y.lo), popcount(a ^ b));
      }),
    );
    assert.deepEqual(hash64FromHex('00000001ffffffff'), { hi: 1, lo: 0xffffffff });
    assert.throws(() => hash64FromHex('xyz'), /not a 64-bit hex hash/);
  });

  it('a table key depends on exactly `bits` bits of the hash, the same for the same seed', () => {
    const lsh = hammingLsh(3, 12, 4);
    for (let t = 0; t < 4; t++) {
      let used = 0;
      for (let p = 0; p < 64; p++) {
        const flipped = halves(1n << BigInt(63 - p));
        if (tableKey(lsh, t, flipped.hi, flipped.lo) !== tableKey(lsh, t, 0, 0)) used++;
      }
      assert.equal(used, 12);
    }
    assert.deepEqual(hammingLsh(3, 12, 4).lookup, lsh.lookup);
    assert.notDeepEqual(hammingLsh(4, 12, 4).lookup, lsh.lookup);
  });

  it('finds pairs within the distance and only those, without comparing all pairs', () => {
    // 300 random hashes plus, for 100 of them, a copy with 1–6 bits flipped.
    const all: bigint[] = [];
    for (let i = 0; i < 300; i++) all.push(keyedHash64(1, 'lsh-test', String(i)));
    for (let i = 0; i < 100; i++) {
      let x = all[i];
      const flips = 1 + (i % 6);
      for (let f = 0; f < flips; f++) x ^= 1n << (keyedHash64(1, `flip-${f}`, String(i)) % 64n);
      all.push(x);
    }
    const hi = Uint32Array.from(all, (x) => halves(x).hi);
    const lo = Uint32Array.from(all, (x) => halves(x).lo);
    const tables = tablesForRecall(6, 16, 0.999999);
    const found = new Set<string>();
    hammingPairs(hi, lo, hammingLsh(9, 16, tables), 6, (i, j) => {
      assert.ok(i < j);
      found.add(`${i},${j}`);
    });
    const expected = new Set<string>();
    for (let i = 0; i < all.length; i++)
      for (let j = i + 1; j < all.length; j++) if (popcount(all[i] ^ all[j]) <= 6) expected.add(`${i},${j}`);
    assert.ok(expected.size >= 100);
    assert.deepEqual([...found].sort(), [...expected].sort());
  });

  it('computes the recall of a banding and the tables it needs', () => {
    assert.equal(hammingRecall(0, 16, 1), 1);
    assert.ok(Math.abs(hammingRecall(10, 16, 1) - 0.0432) < 0.001);
    const t = tablesForRecall(10, 16, 0.98);
    assert.ok(hammingRecall(10, 16, t) >= 0.98 && hammingRecall(10, 16, t - 1) < 0.98);
  });

  it('text bands: equal signatures share every band, an empty text has none', () => {
    const sig = Uint8Array.from({ length: 128 }, (_, i) => (i * 37) & 255);
    const keys = textBandKeys(sig, 32);
    assert.equal(keys.length, 32);
    assert.equal(keys[1], `1:${Buffer.from(sig.subarray(4, 8)).toString('hex')}`);
    const other = sig.slice();
    other[5] ^= 1;
    const k2 = textBandKeys(other, 32);
    assert.deepEqual(
      keys.filter((k, b) => k !== k2[b]),
      [keys[1]],
    );
    assert.deepEqual(textBandKeys(new Uint8Array(128), 32), []);
    assert.throws(() => textBandKeys(sig, 3), /do not divide/);
  });

  it('a large band group (shared boilerplate text) is split by its images instead of paired all with all', () => {
    const lsh = hammingLsh(2, 16, tablesForRecall(8, 16, 0.99));
    const members: { g: number; image?: { hi: number; lo: number } }[] = [];
    for (let g = 0; g < 1000; g++) members.push({ g, image: halves(keyedHash64(4, 'group', String(g))) });
    const near = halves(keyedHash64(4, 'group', '17') ^ 0b10110n); // 3 bits from member 17
    members.push({ g: 1000, image: near });
    for (let g = 1001; g < 1005; g++) members.push({ g }); // text-only
    const pairs = new Set<string>();
    bandGroupPairs(members, lsh, (i, j) => {
      assert.ok(i < j);
      pairs.add(`${i},${j}`);
    });
    assert.ok(pairs.has('17,1000'), 'the near pair is a candidate');
    for (const g of [1002, 1003, 1004]) assert.ok(pairs.has(`1001,${g}`), 'text-only members joined');
    assert.ok(pairs.size < 2000, `${pairs.size} candidates, not ~500,000`);
    // A small group: every pair.
    const small = new Set<string>();
    bandGroupPairs(members.slice(0, 5), lsh, (i, j) => small.add(`${i},${j}`));
    assert.equal(small.size, 10);
  });
});
