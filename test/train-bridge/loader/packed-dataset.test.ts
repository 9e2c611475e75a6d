import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MixedStreamingDataset, type MixStreamSpec } from '../../../train-bridge/loader/mixed-dataset.ts';
import {
  PackedDataset,
  type PackedDatasetOptions,
  PackedStateSchema,
  type SampleRef,
} from '../../../train-bridge/loader/packed-dataset.ts';
import { packFirstFit, packFirstFitDecreasing } from '../../../train-bridge/loader/packing.ts';
import {
  readTokenCounts,
  sampleTokens,
  tokenCountsDir,
  writeTokenCounts,
} from '../../../train-bridge/loader/token-counts.ts';
import { loadQwen2Tokenizer } from '../../../train-bridge/text/index.ts';
import { collect, writeFixtureMixture } from './fixtures.ts';

/** A deterministic PRNG for picking test points (not part of the code under test). */
function points(seed: number, n: number, max: number): number[] {
  let x = seed >>> 0;
  return Array.from({ length: n }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % max;
  });
}

describe('packFirstFit', () => {
  const lengths = points(1, 500, 900).map((x) => 20 + x);
  const input = (i: number) => ({ ref: i, length: lengths[i] });

  it('packs every sample once, in first-fit order, never over the capacity but for a lone long sample', () => {
    const packs = [...packFirstFit(input, lengths.length, { capacity: 1024, window: 8 })].map((p) => p.pack);
    const all = packs.flatMap((p) => p.refs);
    assert.deepEqual(
      [...all].sort((a, b) => a - b),
      lengths.map((_, i) => i),
    );
    for (const p of packs) {
      const sum = p.refs.reduce((a, r) => a + Math.min(lengths[r], 1024), 0);
      assert.equal(p.tokens, sum);
      assert.ok(sum <= 1024 || p.refs.length === 1);
    }
    // The window bounds how far a sample can be overtaken.
    const firstPack = new Map<number, number>();
    packs.forEach((p, k) => {
      for (const r of p.refs) firstPack.set(r, k);
    });
    for (let i = 1; i < lengths.length; i++) assert.ok(firstPack.get(i)! + 8 >= firstPack.get(i - 1)! - 8);
  });

  it('continues from any state exactly as the uninterrupted packing', () => {
    const full = [...packFirstFit(input, lengths.length, { capacity: 700, window: 16 })];
    for (const q of points(3, 20, full.length - 1)) {
      const rest = [...packFirstFit(input, lengths.length, { capacity: 700, window: 16 }, full[q].after)];
      assert.deepEqual(
        rest.map((p) => p.pack),
        full.slice(q + 1).map((p) => p.pack),
      );
    }
  });

  it('first-fit decreasing over the whole input is at least as tight (the bound)', () => {
    const ff = [...packFirstFit(input, lengths.length, { capacity: 1024, window: 64 })].length;
    const ffd = packFirstFitDecreasing(lengths, 1024);
    const sum = lengths.reduce((a, b) => a + b, 0);
    assert.ok(ffd <= ff && ffd >= Math.ceil(sum / 1024), `ffd ${ffd}, ff ${ff}`);
    assert.equal(packFirstFitDecreasing([600, 600, 500, 400, 100], 1000), 3);
  });
});

describe('PackedDataset', () => {
  let dir: string;
  const SIZES = [240, 160];
  let specs: MixStreamSpec[];
  const RES = 256; // 16 tokens per image
  const BASE: PackedDatasetOptions = {
    lanes: 4,
    shuffleBuffer: 128,
    seed: 5,
    capacity: 160,
    window: 8,
    resolution: RES,
  };
  const key = (r: SampleRef) => `${r.stream}:${r.item}`;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mixforge-pack-'));
    specs = [];
    for (const [s, rows] of SIZES.entries()) {
      const d = join(dir, `m${s}`);
      await writeFixtureMixture(d, {
        shards: [rows / 2, rows / 2],
        seed: s + 1,
        imageCount: (_, i) => (i * 7 + s) % 4,
        imageSize: { width: 8, height: 8 },
      });
      specs.push({ manifest: join(d, 'manifest.json'), name: `m${s}`, weight: s === 0 ? 2 : 1 });
      await writeTokenCounts(specs[s].manifest, { resolution: RES });
    }
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('the token-count sidecar holds each sample’s rendered tokens + image tokens; a rerun rewrites nothing', async () => {
    const tok = await loadQwen2Tokenizer();
    const counts = await readTokenCounts(specs[0].manifest, RES);
    const mix = new MixedStreamingDataset([{ ...specs[0], weight: 1 }], { lanes: 4, seed: 5 });
    await mix.open();
    for (let item = 0; item < 20; item++) {
      const row = await mix.rowOf(0, item);
      const at = mix.addressOf(0, item);
      const want = sampleTokens(row, tok, 16, 'data');
      assert.equal(counts[at.shard][at.group * 256 + at.row], want);
      const images = (row.conversations[0].value.match(/<image>/g) ?? []).length;
      assert.equal(images, row.images.length);
      assert.ok(want > 16 * images + 20, `a sample with ${images} images has ${want} tokens`);
    }
    const file = join(tokenCountsDir(join(dir, 'm0'), RES), 'shard-00000.u32');
    const bytes = await readFile(file);
    const skipped: boolean[] = [];
    await writeTokenCounts(specs[0].manifest, {
      resolution: RES,
      onShard: (_d, _t, skip) => skipped.push(skip),
    });
    assert.deepEqual(skipped, [true, true]);
    assert.deepEqual(await readFile(file), bytes);
    await assert.rejects(
      readTokenCounts(specs[0].manifest, 512),
      /no token counts at resolution 512.*mixforge tokens/,
    );
  });

  async function packed(opts: Partial<PackedDatasetOptions> = {}, w?: number[]) {
    const ss = w ? specs.map((s, i) => ({ ...s, weight: w[i] })) : specs;
    const ds = new PackedDataset(ss, { ...BASE, ...opts });
    await ds.open();
    return ds;
  }

  /** The non-pad packs of each rank (global index r + W·k below the pack count), as sample keys. */
  async function served(
    world: number,
    state?: unknown,
    opts: Partial<PackedDatasetOptions> = {},
    w?: number[],
  ) {
    const out: string[] = [];
    for (let r = 0; r < world; r++) {
      const ds = await packed({ ...opts, rank: r, worldSize: world }, w);
      if (state) ds.resume(PackedStateSchema.parse(JSON.parse(JSON.stringify(state))));
      const total = ds.globalPackCount();
      for (const { k, refs } of ds.rankRefs()) if (r + world * k < total) out.push(...refs.map(key));
    }
    return out;
  }

  it('serves every sample of the epoch once across ranks, packs within capacity', async () => {
    const one = await served(1);
    const total = (await packed()).globalPackCount();
    assert.equal(one.length, 400);
    assert.equal(new Set(one).size, 400);
    for (const world of [2, 3]) assert.deepEqual((await served(world)).sort(), [...one].sort());
    const ds = await packed();
    for (const { refs, tokens } of ds.rankRefs())
      assert.ok(tokens <= 160 || refs.length === 1, `pack of ${refs.length} with ${tokens} tokens`);
    assert.ok(total < 400, `${total} packs for 400 samples`);
  });

  it('resumes exactly at 50 points, and elastically 2→3 and 4→3: the samples not yet consumed, each once', async () => {
    const all = new Set(await served(1));
    for (const [from, to] of [
      [1, 1],
      [2, 3],
      [4, 3],
    ]) {
      const ds = await packed({ worldSize: from });
      const rounds = Math.floor(ds.globalPackCount() / from);
      for (const k of points(from * 17 + to, from === 1 ? 50 : 8, rounds)) {
        const state = ds.stateAfter(k);
        // Consumed: the first from·k global packs (every rank took k).
        const consumed: string[] = [];
        let g = 0;
        for (const { refs } of (await packed()).rankRefs()) {
          if (g++ >= from * k) break;
          consumed.push(...refs.map(key));
        }
        const rest = await served(to, state);
        assert.equal(new Set(rest).size, rest.length, `${from}→${to} at ${k}: a sample twice`);
        assert.deepEqual(
          [...rest, ...consumed].sort(),
          [...all].sort(),
          `${from}→${to} at ${k}: consumed + resumed is not the epoch`,
        );
      }
    }
  });

  it('a resume with another capacity or other weights consumes no sample twice and says so', async () => {
    const ds = await packed();
    const state = ds.stateAfter(30);
    const consumed = new Set<string>();
    let g = 0;
    for (const { refs } of ds.rankRefs()) {
      if (g++ >= 30) break;
      for (const r of refs) consumed.add(key(r));
    }
    const bigger = await packed({ capacity: 400 });
    bigger.resume(state);
    assert.match(bigger.resumeNote ?? '', /packing 160\/8 → 400\/8/);
    const rest = await served(1, state, { capacity: 400 });
    assert.equal(new Set(rest).size, rest.length);
    assert.equal(rest.length + consumed.size, 400);
    for (const k of rest) assert.ok(!consumed.has(k));
    const reweighted = await served(1, state, {}, [1, 1]);
    assert.equal(new Set(reweighted).size, reweighted.length);
    for (const k of reweighted) assert.ok(!consumed.has(k), `${k} consumed twice after a weight change`);
  });

  it('yields the rows of each pack', async () => {
    const ds = await packed();
    const [first] = await collect(ds, 1);
    const [refs] = [...ds.rankRefs()].map((p) => p.refs);
    assert.equal(first.samples.length, refs.length);
    const mix = new MixedStreamingDataset(specs, { lanes: 4, shuffleBuffer: 128, seed: 5 });
    await mix.open();
    for (const [i, r] of refs.entries())
      assert.equal(first.samples[i].id, (await mix.rowOf(r.stream, r.item)).id);
  });

  it('each pack carries the state after its round (what stateAfter gives), through the end and into the next epoch', async () => {
    for (const world of [1, 3]) {
      const ds = await packed({ rank: world - 1, worldSize: world });
      const batches = await collect(ds);
      assert.equal(batches.length, ds.rankLength());
      for (const b of batches)
        assert.deepEqual(b.state, ds.stateAfter(b.rankIndex + 1), `W=${world} pack ${b.rankIndex}`);
      const end = batches.at(-1)!.state;
      assert.equal(end.mix.position, end.mix.total);
      assert.deepEqual(end.pending, []);
      // The end state resumes at the next epoch; so does setEpoch.
      const next = await packed({ rank: world - 1, worldSize: world });
      next.resume(end);
      assert.equal(next.epoch, 1);
      ds.setEpoch(1);
      assert.deepEqual([...next.rankRefs()], [...ds.rankRefs()]);
    }
  });
});

describe('mixforge tokens', () => {
  it('counts a mixture, then resumes with nothing to do; a bad resolution is one clear line', async () => {
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const run = promisify(execFile);
    const d = await mkdtemp(join(tmpdir(), 'mixforge-tokens-cli-'));
    try {
      await writeFixtureMixture(d, { shards: [10, 5] });
      const cli = [...['--import', 'tsx'], join(import.meta.dirname, '../../../cli/main.ts'), 'tokens'];
      const manifest = join(d, 'manifest.json');
      const first = await run(process.execPath, [...cli, manifest, '--resolution', '128']);
      assert.match(first.stdout, /2 shards \(2 counted, 0 already done\)/);
      const again = await run(process.execPath, [...cli, manifest, '--resolution', '128']);
      assert.match(again.stdout, /2 shards \(0 counted, 2 already done\)/);
      assert.equal((await readTokenCounts(manifest, 128))[1].length, 5);
      await assert.rejects(
        run(process.execPath, [...cli, manifest, '--resolution', '100']),
        /multiple of 64/,
      );
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });
});
