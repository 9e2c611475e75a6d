import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { NearDupClusters } from '../../core/near-dup-clusters.ts';

describe('near-duplicate clusters', () => {
  it('keeps the best-ranked item of each connected component, whatever order the pairs come in', () => {
    const n = 30;
    const pair = fc.tuple(fc.nat(n - 1), fc.nat(n - 1));
    fc.assert(
      fc.property(
        fc.array(pair, { maxLength: 40 }),
        fc.shuffledSubarray(
          Array.from({ length: n }, (_, i) => i),
          { minLength: n, maxLength: n },
        ),
        (pairs, rankOrder) => {
          const rank = new Int32Array(n);
          for (const [r, i] of rankOrder.entries()) rank[i] = r;
          const better = (a: number, b: number) => rank[a] < rank[b];
          const resolve = (ps: [number, number][]) => {
            const c = new NearDupClusters(n, better);
            for (const [i, j] of ps) c.union(i, j);
            return Array.from({ length: n }, (_, i) => c.keptFor(i));
          };
          const forward = resolve(pairs);
          assert.deepEqual(resolve([...pairs].reverse().map(([i, j]) => [j, i])), forward);
          // Brute force: the best-ranked item reachable from i.
          for (let i = 0; i < n; i++) {
            const seen = new Set([i]);
            const stack = [i];
            while (stack.length) {
              const x = stack.pop() as number;
              for (const [a, b] of pairs)
                for (const [p, q] of [
                  [a, b],
                  [b, a],
                ])
                  if (p === x && !seen.has(q)) {
                    seen.add(q);
                    stack.push(q);
                  }
            }
            const best = [...seen].reduce((a, b) => (better(b, a) ? b : a));
            assert.equal(forward[i], best);
          }
        },
      ),
      { numRuns: 150, seed: 5 },
    );
  });
});
