import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EpochOrder } from '../../../train-bridge/loader/epoch-order.ts';
import { positionAfter, rankCount, rankPosition } from '../../../train-bridge/loader/partition.ts';

const layout = fc.array(fc.integer({ min: 0, max: 700 }), { minLength: 1, maxLength: 5 });
const params = fc.record({
  seed: fc.integer({ min: 0, max: 1000 }),
  epoch: fc.integer({ min: 0, max: 5 }),
  lanes: fc.integer({ min: 1, max: 9 }),
  shuffleWindow: fc.integer({ min: 1, max: 300 }),
  rowGroupSize: fc.constantFrom(7, 64, 256),
});

describe('EpochOrder', () => {
  it('maps the positions of an epoch one-to-one onto the rows of the mixture', () => {
    fc.assert(
      fc.property(layout, params, (rows, p) => {
        const order = new EpochOrder(
          rows.map((r, i) => ({ path: `shards/${i}`, rows: r })),
          p,
        );
        const total = rows.reduce((a, b) => a + b, 0);
        assert.equal(order.total, total);
        const seen = new Set<string>();
        for (let pos = 0; pos < total; pos++) {
          const a = order.addressOf(pos);
          assert.ok(a.shard >= 0 && a.shard < rows.length);
          const rowInShard = a.group * p.rowGroupSize + a.row;
          assert.ok(a.row < p.rowGroupSize && rowInShard < rows[a.shard], JSON.stringify(a));
          seen.add(`${a.shard}:${rowInShard}`);
        }
        assert.equal(seen.size, total);
      }),
      { numRuns: 60 },
    );
  });

  it('keeps each shuffle window inside its span of the lane, and lanes round-robin', () => {
    fc.assert(
      fc.property(layout, params, (rows, p) => {
        const order = new EpochOrder(
          rows.map((r, i) => ({ path: `shards/${i}`, rows: r })),
          p,
        );
        let lanesTotal = 0;
        for (let lane = 0; lane < p.lanes; lane++) {
          const span = order.laneSpan(lane);
          lanesTotal += span.length;
          assert.ok(
            span.length >= Math.floor(order.total / p.lanes) &&
              span.length <= Math.ceil(order.total / p.lanes),
          );
        }
        assert.equal(lanesTotal, order.total);
        for (let pos = 0; pos < order.total; pos++) {
          const { lane, index } = order.laneOf(pos);
          if (pos < Math.floor(order.total / p.lanes) * p.lanes) assert.equal(lane, pos % p.lanes);
          const span = order.laneSpan(lane);
          const s = order.streamIndex(pos);
          const w = Math.floor(index / p.shuffleWindow);
          assert.ok(
            s >= span.start + w * p.shuffleWindow &&
              s < span.start + Math.min(span.length, (w + 1) * p.shuffleWindow),
          );
        }
      }),
      { numRuns: 60 },
    );
  });

  it('is a pure function of its inputs (two instances, positions asked in any order)', () => {
    const shards = [
      { path: 'a', rows: 500 },
      { path: 'b', rows: 333 },
    ];
    const p = { seed: 3, epoch: 2, lanes: 3, shuffleWindow: 50, rowGroupSize: 64 };
    const x = new EpochOrder(shards, p);
    const y = new EpochOrder(shards, p);
    const forward = Array.from({ length: 833 }, (_, i) => x.streamIndex(i));
    const backward = Array.from({ length: 833 }, (_, i) => y.streamIndex(832 - i)).reverse();
    assert.deepEqual(forward, backward);
    const other = new EpochOrder(shards, { ...p, epoch: 3 });
    assert.notDeepEqual(
      Array.from({ length: 833 }, (_, i) => other.streamIndex(i)),
      forward,
    );
  });
});

describe('partition arithmetic', () => {
  it('ranks cover the suffix [start, total) exactly (pad) and the resume point advances by W per step', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 300 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 0, max: 300 }),
        (total, worldSize, startRaw) => {
          const start = Math.min(startRaw, total);
          const spec = { worldSize, start, total, remainder: 'pad' as const };
          const covered = new Map<number, number>();
          for (let rank = 0; rank < worldSize; rank++)
            for (let k = 0; k < rankCount(spec); k++) {
              const pos = rankPosition({ ...spec, rank }, k);
              covered.set(pos, (covered.get(pos) ?? 0) + 1);
            }
          const pads = rankCount(spec) * worldSize - (total - start);
          assert.ok(pads >= 0 && pads < worldSize);
          // Padding wraps to the start of the epoch order: pad j serves position j mod total (an epoch shorter
          // than the world size wraps more than once).
          const padsAt = (pos: number) => (pos < pads ? Math.floor((pads - 1 - pos) / total) + 1 : 0);
          for (let pos = 0; pos < total; pos++)
            assert.equal(covered.get(pos) ?? 0, (pos >= start ? 1 : 0) + padsAt(pos), `position ${pos}`);
          assert.equal(
            [...covered.values()].reduce((a, b) => a + b, 0),
            total - start + pads,
          );
          assert.equal(positionAfter(spec, 0), rankCount(spec) === 0 ? total : start);
          assert.equal(positionAfter(spec, rankCount(spec)), total);
        },
      ),
    );
  });
});
