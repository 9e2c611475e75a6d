import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type LoaderSample,
  StreamingDataset,
  type StreamingDatasetOptions,
} from '../../../train-bridge/loader/dataset.ts';
import { type LoaderState, parseLoaderState } from '../../../train-bridge/loader/state.ts';
import { collect, fixtureId, writeFixtureMixture } from './fixtures.ts';

const SHARDS = [600, 450, 301];
const N = SHARDS.reduce((a, b) => a + b, 0);
const BASE: StreamingDatasetOptions = { lanes: 4, shuffleBuffer: 512, seed: 11 };

let dir: string;
let manifest: string;
const allIds = SHARDS.flatMap((rows, s) => Array.from({ length: rows }, (_, i) => fixtureId(s, i)));

const ids = (xs: LoaderSample[]) => xs.map((x) => x.id);
const run = async (opts: StreamingDatasetOptions, limit?: number) =>
  ids(await collect(new StreamingDataset(manifest, { ...BASE, ...opts }), limit));

/** A rank's sequence as a rank-level consumer sees it: its workers' samples merged by rank index. */
async function rankSequence(opts: StreamingDatasetOptions, numWorkers: number): Promise<LoaderSample[]> {
  const parts = await Promise.all(
    Array.from({ length: numWorkers }, (_, w) =>
      collect(new StreamingDataset(manifest, { ...BASE, ...opts, workerId: w, numWorkers })),
    ),
  );
  return parts.flat().sort((a, b) => a.rankIndex - b.rankIndex);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-loader-'));
  await writeFixtureMixture(dir, { shards: SHARDS });
  manifest = join(dir, 'manifest.json');
});
after(() => rm(dir, { recursive: true, force: true }));

describe('StreamingDataset epoch order', () => {
  let epoch0: string[];
  before(async () => {
    epoch0 = await run({});
  });

  it('visits every sample of the mixture exactly once per epoch', () => {
    assert.equal(epoch0.length, N);
    assert.deepEqual([...epoch0].sort(), [...allIds].sort());
  });

  it('is identical on re-run and shuffled away from the stored order', async () => {
    assert.deepEqual(await run({}), epoch0);
    const stored: string[] = [];
    for (let s = 0; s < SHARDS.length; s++) for (let i = 0; i < SHARDS[s]; i++) stored.push(fixtureId(s, i));
    const samePlace = epoch0.filter((id, p) => stored[p] === id).length;
    assert.ok(samePlace < N / 20, `${samePlace} samples kept their stored position`);
  });

  it('differs per epoch and per seed, each still a permutation', async () => {
    const epoch1 = await run({ epoch: 1 });
    const seed2 = await run({ seed: 12 });
    for (const other of [epoch1, seed2]) {
      assert.deepEqual([...other].sort(), [...allIds].sort());
      const same = other.filter((id, p) => epoch0[p] === id).length;
      assert.ok(same < N / 20, `${same} positions unchanged`);
    }
  });
});

describe('StreamingDataset partitioning', () => {
  const cases: [number, number][] = [
    [1, 2],
    [2, 1],
    [3, 2],
    [4, 3],
    [5, 1],
    [8, 2],
  ];
  let global: string[];
  before(async () => {
    global = await run({});
  });

  for (const [worldSize, numWorkers] of cases) {
    it(`world ${worldSize} × ${numWorkers} workers: strided slices of the epoch order, complete, equal per rank (pad)`, async () => {
      const per = Math.ceil(N / worldSize);
      const seen = new Map<string, number>();
      for (let rank = 0; rank < worldSize; rank++) {
        const seq = await rankSequence({ rank, worldSize }, numWorkers);
        assert.equal(seq.length, per, `rank ${rank} count`);
        seq.forEach((x, k) => {
          assert.equal(x.rankIndex, k);
          const slot = rank + worldSize * k;
          // Pad slots wrap to the beginning of the epoch order.
          assert.equal(x.id, global[slot < N ? slot : slot - N], `rank ${rank} sample ${k}`);
          seen.set(x.id, (seen.get(x.id) ?? 0) + 1);
        });
      }
      assert.equal(seen.size, N, 'every sample served');
      const twice = [...seen.entries()].filter(([, c]) => c > 1).map(([id]) => id);
      assert.deepEqual(twice.sort(), global.slice(0, per * worldSize - N).sort(), 'only the padding repeats');
    });
  }

  it('drop mode: disjoint, floor(N / W) per rank, the last N mod W samples left out', async () => {
    const worldSize = 4;
    const served: string[] = [];
    for (let rank = 0; rank < worldSize; rank++) {
      const seq = await rankSequence({ rank, worldSize, remainder: 'drop' }, 2);
      assert.equal(seq.length, Math.floor(N / worldSize));
      served.push(...ids(seq));
    }
    assert.equal(new Set(served).size, served.length, 'disjoint');
    const missing = allIds.filter((id) => !served.includes(id));
    assert.deepEqual(missing.sort(), global.slice(N - (N % worldSize)).sort());
  });

  it('ranks read disjoint row groups when the world size divides the lanes', async () => {
    let decoded = 0;
    for (let rank = 0; rank < 4; rank++) {
      // Drop mode: no padding slots (which would read the epoch's first row group again).
      const ds = new StreamingDataset(manifest, { ...BASE, rank, worldSize: 4, remainder: 'drop' });
      await collect(ds);
      decoded += ds.ioStats().groupsDecoded;
    }
    const groups = SHARDS.reduce((a, r) => a + Math.ceil(r / 256), 0);
    // Lanes are contiguous spans of the stream; only a row group cut by a lane boundary is read by two ranks.
    assert.ok(decoded <= groups + 3, `${decoded} row groups decoded for ${groups} in the mixture`);
  });
});

describe('StreamingDataset resume', () => {
  it('resume after k samples equals the tail of an uninterrupted run (also through JSON)', async () => {
    for (const [rank, worldSize, k] of [
      [0, 1, 0],
      [0, 1, 517],
      [1, 3, 200],
      [2, 3, 450],
    ]) {
      const full = await run({ rank, worldSize });
      const first = new StreamingDataset(manifest, { ...BASE, rank, worldSize });
      const head = ids(await collect(first, k));
      await first.open();
      const state = parseLoaderState(JSON.stringify(k === 0 ? first.stateAfter(0) : first.state()));
      assert.equal(state.position, k * worldSize);
      const second = new StreamingDataset(manifest, { ...BASE, rank, worldSize, seed: 999, lanes: 2 });
      second.resume(state);
      const tail = ids(await collect(second));
      assert.deepEqual(head, full.slice(0, k));
      assert.deepEqual(tail, full.slice(k), `rank ${rank}/${worldSize} after ${k}`);
    }
  });

  it('a state saved at the end of an epoch resumes at the start of the next', async () => {
    const ds = new StreamingDataset(manifest, BASE);
    await collect(ds);
    const state = ds.state();
    assert.equal(state.position, N);
    const next = new StreamingDataset(manifest, BASE);
    next.resume(state);
    assert.deepEqual(ids(await collect(next, 50)), (await run({ epoch: 1 })).slice(0, 50));
  });

  it('elastic: 4 ranks → 3 ranks cover exactly what was left (pad and drop)', async () => {
    const k = 123;
    const consumed: string[] = [];
    const states: LoaderState[] = [];
    for (let rank = 0; rank < 4; rank++) {
      const ds = new StreamingDataset(manifest, { ...BASE, rank, worldSize: 4 });
      consumed.push(...ids(await collect(ds, k)));
      states.push(ds.state());
    }
    for (const s of states) assert.deepEqual(s, states[0], 'every rank saves the same job state');
    assert.equal(states[0].worldSizeAtSave, 4);
    const global = await run({});
    assert.deepEqual([...consumed].sort(), global.slice(0, 4 * k).sort());
    const left = global.slice(4 * k);
    for (const remainder of ['pad', 'drop'] as const) {
      const served: string[] = [];
      for (let rank = 0; rank < 3; rank++) {
        const ds = new StreamingDataset(manifest, { ...BASE, rank, worldSize: 3 });
        ds.resume({ ...states[0], remainder });
        const seq = ids(await collect(ds));
        assert.equal(
          seq.length,
          remainder === 'pad' ? Math.ceil(left.length / 3) : Math.floor(left.length / 3),
        );
        served.push(...seq);
      }
      const expected =
        remainder === 'pad'
          ? [...left, ...global.slice(0, 3 * Math.ceil(left.length / 3) - left.length)]
          : left.slice(0, left.length - (left.length % 3));
      assert.deepEqual(served.sort(), expected.sort(), remainder);
    }
  });

  it('refuses a state of another mixture or a malformed one, naming the field', async () => {
    const ds = new StreamingDataset(manifest, BASE);
    await ds.open();
    const good = ds.stateAfter(10);
    const other = new StreamingDataset(manifest, BASE);
    await other.open();
    assert.throws(() => other.resume({ ...good, layout: '0123456789abcdef' }), /another mixture/);
    assert.throws(() => parseLoaderState({ ...good, position: -1 }, 'state.json'), /state\.json at position/);
    assert.throws(() => parseLoaderState({ ...good, version: 2 }), /at version/);
    assert.throws(() => parseLoaderState({ ...good, position: N + 1 }), /past the epoch/);
  });
});
