import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readManifest } from '../../../manifests/manifest.ts';
import { readShardSamples } from '../../../manifests/shard-format.ts';
import { readTokenSidecar } from '../../../manifests/token-counts.ts';
import { type LoaderSample, StreamingDataset } from '../../../train-bridge/loader/dataset.ts';
import { writeTokenCounts } from '../../../train-bridge/loader/token-counts.ts';
import { groupByModalityLength } from '../../../train-bridge/text/index.ts';
import { collect, fixtureId, writeFixtureMixture } from './fixtures.ts';

describe('StreamingDataset with group_by_modality_length', () => {
  let dir: string;
  let manifest: string;
  const SHARDS = [70, 50];
  const GROUPING = { batchSize: 4, worldSize: 2, resolution: 64 };
  // Every third sample is text-only.
  const images = (_s: number, i: number) => (i % 3 === 0 ? 0 : 1);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mixforge-grouped-'));
    await writeFixtureMixture(dir, {
      shards: SHARDS,
      imageCount: images,
      imageSize: { width: 8, height: 8 },
    });
    manifest = join(dir, 'manifest.json');
    await writeTokenCounts(manifest, { resolution: 64 });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const grouped = (opts = {}) =>
    new StreamingDataset(manifest, { seed: 3, groupByModalityLength: GROUPING, ...opts });
  const ids = (xs: LoaderSample[]) => xs.map((x) => x.id);

  it('reads every sample once, in the reference grouping of the sidecar’s modality lengths', async () => {
    const got = ids(await collect(grouped()));
    assert.equal(new Set(got).size, 120);
    const m = await readManifest(manifest);
    const sidecar = await readTokenSidecar(manifest, 64);
    const samples = m.shards.flatMap((s, k) =>
      [...sidecar[k].modality].map((modalityLength, r) => ({ id: `${s.path}#${r}`, modalityLength })),
    );
    for (const x of samples) assert.ok(x.modalityLength !== 0);
    const order = groupByModalityLength(samples, { batchSize: 4, worldSize: 2, seed: 3, epoch: 0 });
    // The loader reads exactly that order: order[p] is a row of the concatenated shards, as stored.
    const stored: string[] = [];
    for (const sh of m.shards) for await (const x of readShardSamples(join(dir, sh.path))) stored.push(x.id);
    assert.deepEqual(
      got,
      order.map((row) => stored[row]),
    );
    const all = new Set(SHARDS.flatMap((n, s) => Array.from({ length: n }, (_, i) => fixtureId(s, i))));
    assert.deepEqual(new Set(got), all);
    // Megabatches of 8 (4 × 2) hold one modality, but for the leftover ones at the end.
    const textOnly = (id: string) => Number(id.split('-').at(-1)) % 3 === 0;
    const full = Math.floor(order.length / 8) - 2;
    for (let b = 0; b < full; b++) {
      const kinds = new Set(got.slice(b * 8, b * 8 + 8).map(textOnly));
      assert.equal(kinds.size, 1, `megabatch ${b} mixes modalities`);
    }
  });

  it('resumes at the exact next sample, any world size; a state of the keyed order is refused', async () => {
    const full = ids(await collect(grouped()));
    const first = grouped();
    const head = ids(await collect(first, 37));
    const state = first.state();
    assert.deepEqual(state.grouping, GROUPING);
    const ranks = [0, 1, 2].map((rank) => grouped({ rank, worldSize: 3 }));
    for (const r of ranks) r.resume(state);
    // pad: the < 3 slots past the end repeat the epoch's first positions; the rest is the remainder, each once.
    const rest = (await Promise.all(ranks.map((r) => collect(r))))
      .flat()
      .filter((x) => x.position >= 37)
      .map((x) => x.id);
    assert.deepEqual(head, full.slice(0, 37));
    assert.equal(rest.length, full.length - 37);
    assert.deepEqual(new Set(rest), new Set(full.slice(37)));
    const keyed = new StreamingDataset(manifest, { seed: 3 });
    keyed.resume(state);
    await assert.rejects(
      keyed.open(),
      /saved with group_by_modality_length 4×2 at 64, this loader uses the keyed order/,
    );
  });

  it('without the sidecar, says which command writes it', async () => {
    await assert.rejects(
      grouped({ groupByModalityLength: { ...GROUPING, resolution: 128 } }).open(),
      /mixforge tokens/,
    );
  });
});
