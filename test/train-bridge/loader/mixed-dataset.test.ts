import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { countsFromWeights, MixOrder, streamItem } from '../../../train-bridge/loader/mix-order.ts';
import { parseMixState } from '../../../train-bridge/loader/mix-state.ts';
import {
  type MixedDatasetOptions,
  MixedStreamingDataset,
  type MixStreamSpec,
} from '../../../train-bridge/loader/mixed-dataset.ts';
import { collect, writeFixtureMixture } from './fixtures.ts';

/** A deterministic PRNG for picking test points (not part of the code under test). */
function points(seed: number, n: number, max: number): number[] {
  let x = seed >>> 0;
  return Array.from({ length: n }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % max;
  });
}

describe('MixOrder', () => {
  const order = new MixOrder(5, 0, { start: 0, base: [0, 0, 0], counts: [700, 200, 100] });

  it('walks every item of every stream once, and at(p) agrees with the walk', () => {
    const counts = [0, 0, 0];
    for (let p = 0; p < order.total; p++) {
      const { stream, item } = order.next(counts);
      assert.equal(item, counts[stream]);
      if (p % 97 === 0) assert.deepEqual(order.at(p), { stream, item }, `position ${p}`);
      counts[stream] += 1;
    }
    assert.deepEqual(counts, [700, 200, 100]);
    assert.deepEqual(order.countsAt(order.total), counts);
  });

  it('keeps every prefix within 1 + streams·share items of each stream’s share', () => {
    const counts = [0, 0, 0];
    for (let p = 1; p <= order.total; p++) {
      counts[order.next(counts).stream] += 1;
      // Each stream is within (−1, 1] of τ·n_s at the prefix time τ, so the prefix is within 1 + 3·n_s/N.
      for (const [s, n] of [700, 200, 100].entries())
        assert.ok(
          Math.abs(counts[s] - (p * n) / 1000) <= 1 + (3 * n) / 1000,
          `prefix ${p}: stream ${s} has ${counts[s]}`,
        );
    }
  });

  it('observed proportions of a long stream are within binomial tolerance of the weights', () => {
    const w = [0.7, 0.2, 0.1];
    const total = 20_000;
    const long = new MixOrder(9, 3, { start: 0, base: [0, 0, 0], counts: countsFromWeights(w, total) });
    const counts = [0, 0, 0];
    for (let p = 0; p < total; p++) counts[long.next(counts).stream] += 1;
    for (const [s, ws] of w.entries()) {
      const sigma = Math.sqrt(total * ws * (1 - ws));
      assert.ok(Math.abs(counts[s] - total * ws) <= 3 * sigma, `stream ${s}: ${counts[s]}`);
    }
  });

  it('differs per seed and epoch', () => {
    const seq = (o: MixOrder) => {
      const c = [0, 0, 0];
      return Array.from({ length: 200 }, () => {
        const { stream } = o.next(c);
        c[stream] += 1;
        return stream;
      }).join('');
    };
    const a = seq(order);
    assert.notEqual(seq(new MixOrder(6, 0, order.segment)), a);
    assert.notEqual(seq(new MixOrder(5, 1, order.segment)), a);
    assert.equal(seq(new MixOrder(5, 0, order.segment)), a);
  });

  it('countsFromWeights gives the epoch size exactly, each share within one', () => {
    assert.deepEqual(countsFromWeights([0.7, 0.3], 10), [7, 3]);
    assert.deepEqual(countsFromWeights([1, 1, 1], 10), [4, 3, 3]);
    const c = countsFromWeights([0.123, 0.456, 0.421], 9999);
    assert.equal(
      c.reduce((a, b) => a + b, 0),
      9999,
    );
    assert.throws(() => countsFromWeights([0, 0], 10), /sum to 0/);
    assert.throws(() => countsFromWeights([-1, 2], 10), /weight -1/);
  });

  it('streamItem repeats a stream pass by pass', () => {
    assert.deepEqual(streamItem(0, 3), { pass: 0, position: 0 });
    assert.deepEqual(streamItem(5, 3), { pass: 1, position: 2 });
  });
});

describe('MixedStreamingDataset', () => {
  let dir: string;
  const SIZES = [300, 200, 100];
  let specs: MixStreamSpec[];
  const BASE: MixedDatasetOptions = { lanes: 4, shuffleBuffer: 256, seed: 3 };
  const key = (x: { stream: number; item: number }) => `${x.stream}:${x.item}`;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mixforge-mix-'));
    specs = [];
    for (const [s, rows] of SIZES.entries()) {
      const d = join(dir, `m${s}`);
      await writeFixtureMixture(d, { shards: [Math.ceil(rows / 2), Math.floor(rows / 2)], seed: s + 1 });
      specs.push({ manifest: join(d, 'manifest.json'), name: `m${s}` });
    }
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const weighted = (w: number[]) => specs.map((s, i) => ({ ...s, weight: w[i] }));

  async function opened(w: number[], opts: MixedDatasetOptions = {}) {
    const ds = new MixedStreamingDataset(weighted(w), { ...BASE, ...opts });
    await ds.open();
    return ds;
  }

  it('serves each stream its share: repeats a small stream pass by pass, every sample once per pass', async () => {
    const ds = await opened([0.5, 0.3, 0.2], { epochSize: 800 });
    assert.deepEqual(ds.counts, [400, 240, 160]);
    const samples = await collect(ds);
    assert.equal(samples.length, 800);
    for (const [s, size] of SIZES.entries()) {
      const ids = samples.filter((x) => x.stream === s).map((x) => x.id);
      const seen = new Map<string, number>();
      for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1);
      assert.equal(seen.size, size, `stream ${s} covers every sample`);
      const n: number = ds.counts[s];
      for (const c of seen.values()) assert.ok(c === Math.floor(n / size) || c === Math.ceil(n / size));
    }
  });

  it('a stream asked for fewer samples than it has gives a keyed subset, another one each epoch', async () => {
    const ds = await opened([1, 1, 1], { epochSize: 150 });
    const ids0 = (await collect(ds)).filter((x) => x.stream === 0).map((x) => x.id);
    assert.equal(new Set(ids0).size, 50);
    ds.setEpoch(1);
    const ids1 = (await collect(ds)).filter((x) => x.stream === 0).map((x) => x.id);
    assert.notDeepEqual([...ids0].sort(), [...ids1].sort());
  });

  async function rankRun(w: number[], world: number, state?: unknown) {
    const parts = [];
    for (let r = 0; r < world; r++) {
      const ds = await opened(w, { rank: r, worldSize: world, epochSize: 900 });
      if (state) ds.resume(parseMixState(JSON.parse(JSON.stringify(state))));
      parts.push([...ds.rankItems()]);
    }
    return parts;
  }

  it('resumes exactly at 50 points, and elastically 2→3 and 4→3: the uninterrupted remainder, each once', async () => {
    const w = [0.6, 0.3, 0.1];
    const full = (await rankRun(w, 1))[0];
    for (const [from, to] of [
      [1, 1],
      [2, 3],
      [4, 3],
    ]) {
      const ranks = await opened(w, { worldSize: from, epochSize: 900 });
      const total = ranks.total;
      for (const k of points(from * 31 + to, from === 1 ? 50 : 10, Math.floor(total / from))) {
        const state = ranks.stateAfter(k);
        const consumed = new Set(full.slice(0, state.position).map(key));
        const parts = await rankRun(w, to, state);
        // pad: only the < W wrapped slots repeat, and they come from the segment's first positions.
        const got = parts.flat().filter((x) => x.position >= state.position);
        const want = full.slice(state.position);
        assert.deepEqual(
          got.map(key).sort(),
          want.map(key).sort(),
          `${from}→${to} at rank step ${k} (position ${state.position})`,
        );
        for (const x of got) assert.ok(!consumed.has(key(x)), `${key(x)} consumed twice`);
      }
    }
  });

  it('a weight change on resume says what it did and gives no sample twice in the epoch', async () => {
    // Targets 200/200/100, then 300/150/50: no stream goes past its size, so no id may come twice either.
    const a = await opened([0.4, 0.4, 0.2], { epochSize: 500 });
    const before = [...a.rankItems()].slice(0, 250);
    const state = a.stateAfter(250);
    const b = await opened([0.6, 0.3, 0.1], { epochSize: 500 });
    b.resume(state);
    assert.match(b.resumeNote ?? '', /weights changed: m0 200 → 300 this epoch \(\d+ given, \d+ to come\)/);
    const after = [...b.rankItems()];
    const all = [...before, ...after].map(key);
    assert.equal(new Set(all).size, all.length, 'an item came twice');
    // Stream 0 now gives up to its new target; stream 2 had given more than its new share and stops.
    const given = (s: number) => all.filter((k) => k.startsWith(`${s}:`)).length;
    assert.equal(given(0), 300);
    assert.equal(given(1), 150);
    assert.equal(given(2), Math.max(state.streamCounts[2], 50));
    // And the samples themselves (ids, with the stream) never repeat either.
    const samples = [...(await collect(a, 250)), ...(await collect(b))].map((x) => `${x.stream}/${x.id}`);
    assert.equal(new Set(samples).size, samples.length);
  });

  it('a state names its mixtures: another stream list is refused', async () => {
    const a = await opened([1, 1, 1]);
    const state = a.stateAfter(10);
    const other = new MixedStreamingDataset(
      [specs[1], specs[0], specs[2]].map((s) => ({ ...s, weight: 1 })),
      BASE,
    );
    await other.open();
    assert.throws(() => other.resume(state), /stream 0 is m0/);
  });

  it('mixforge stream --mix prints the order and resumes with other weights, saying so', async () => {
    const run = promisify(execFile);
    const cli = join(import.meta.dirname, '../../../cli/main.ts');
    const mix = (w: number[]) => specs.map((s, i) => `${s.manifest}:${w[i]}`).join(',');
    const state = join(dir, 'mix-state.json');
    const args = ['--import', 'tsx', cli, 'stream', '--seed', '3', '--lanes', '4', '--shuffle-buffer', '256'];
    const first = await run(process.execPath, [
      ...args,
      '--mix',
      mix([2, 1, 1]),
      '--epoch-size',
      '40',
      '--limit',
      '10',
      '--state-out',
      state,
    ]);
    const lines = first.stdout.trim().split('\n');
    assert.equal(lines.length, 10);
    const ds = await opened([2, 1, 1], { epochSize: 40 });
    const want = (await collect(ds, 10)).map((x) => `${specs[x.stream].manifest}\t${x.id}`);
    assert.deepEqual(lines, want);
    const rest = await run(process.execPath, [
      ...args,
      '--mix',
      mix([1, 1, 2]),
      '--epoch-size',
      '40',
      '--resume',
      state,
    ]);
    assert.match(rest.stderr, /resume: weights changed:/);
    const all = [...lines, ...rest.stdout.trim().split('\n')];
    assert.equal(new Set(all).size, all.length);
    await assert.rejects(
      run(process.execPath, [...args, '--mix', `${specs[0].manifest}`]),
      /--mix entries are manifest\[#source\|source…\]:weight/,
    );
    // Sub-sources after '#': the fixture's only one gives the whole mixture; an unknown one is an empty stream.
    const sub = await run(process.execPath, [...args, '--mix', `${specs[2].manifest}#fixture/demo:1`]);
    assert.equal(sub.stdout.trim().split('\n').length, 100);
    await assert.rejects(
      run(process.execPath, [...args, '--mix', `${specs[2].manifest}#nope:1`]),
      /has no samples/,
    );
  });

  it('mixes sub-sources of one mixture: each stream only its rows, repeated pass by pass, resumable', async () => {
    const d = join(dir, 'subsources');
    await writeFixtureMixture(d, {
      shards: [60, 40],
      seed: 9,
      source: (_s, i) => (i % 4 === 0 ? 'fx/a' : 'fx/b'),
    });
    const manifest = join(d, 'manifest.json');
    const subs: MixStreamSpec[] = [
      { manifest, sources: ['fx/a'], weight: 1, name: 'a' },
      { manifest, sources: ['fx/b'], weight: 1, name: 'b' },
    ];
    const make = () => new MixedStreamingDataset(subs, { ...BASE, epochSize: 100 });
    const ds = make();
    const all = await collect(ds);
    assert.deepEqual(ds.counts, [50, 50]);
    const of = (s: number) => all.filter((x) => x.stream === s);
    for (const x of of(0)) assert.equal(x.source, 'fx/a');
    for (const x of of(1)) assert.equal(x.source, 'fx/b');
    // 25 rows of a give 50 items: every one twice; b has 75 rows and gives a keyed subset of 50.
    const seen = new Map<string, number>();
    for (const x of of(0)) seen.set(x.id, (seen.get(x.id) ?? 0) + 1);
    assert.equal(seen.size, 25);
    for (const n of seen.values()) assert.equal(n, 2);
    assert.equal(new Set(of(1).map((x) => x.id)).size, 50);
    // A prefix name takes every sub-source under it.
    const both = new MixedStreamingDataset([{ manifest, sources: ['fx/'], weight: 1 }], BASE);
    assert.equal((await collect(both)).length, 100);
    // Resume at 37: the rest, exactly.
    const first = make();
    await collect(first, 37);
    const resumed = make();
    resumed.resume(first.state());
    const rest = (await collect(resumed)).map((x) => `${x.stream}/${x.id}`);
    assert.deepEqual(
      rest,
      all.slice(37).map((x) => `${x.stream}/${x.id}`),
    );
    // Other sub-sources under the same name are another stream: refused.
    const other = new MixedStreamingDataset([{ ...subs[0], sources: ['fx/b'] }, subs[1]], {
      ...BASE,
      epochSize: 100,
    });
    await other.open();
    assert.throws(() => other.resume(first.state()), /stream 0 is a \(layout/);
  });
});
