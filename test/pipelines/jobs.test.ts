// Job-level contracts the executors rely on: a job told to stop stops without marking itself done; route's per-shard
// range lists do not depend on its memory budget and account for every row; write checks them against the buckets.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { poisonReleasedMemory } from '../../core/parquet/group-memory.ts';
import { openParquet } from '../../core/parquet/read.ts';
import { shippedSpecPath } from '../../demo/spec-overrides.ts';
import { readShardSamples } from '../../manifests/shard-format.ts';
import { loadSpec, parseSpec } from '../../manifests/spec.ts';
import { makeBuildContext, writeBuildContext } from '../../pipelines/context.ts';
import type { BuildEvent } from '../../pipelines/events.ts';
import { runBuildInProcess } from '../../pipelines/executor-inprocess.ts';
import { isJobDone, runJobOnce } from '../../pipelines/job-envelope.ts';
import { runRoute, type ShardRoute } from '../../pipelines/jobs/route.ts';
import type { BucketIndex } from '../../pipelines/jobs/shuffle.ts';
import { runWrite } from '../../pipelines/jobs/write.ts';
import { buildLayout } from '../../pipelines/layout.ts';
import { PROGRESS_EVERY } from '../../pipelines/stage.ts';
import { demoDataDir } from '../helpers/demo-data.ts';
import { writeImageConversationParquet } from '../helpers/duckdb-fixtures.ts';

let tmp = '';
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'mixforge-jobs-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('jobs', () => {
  it('a job that comes back after its build finished runs nothing (a fleet head rerun after finalize)', async () => {
    const data = await demoDataDir();
    const spec = await loadSpec(shippedSpecPath('demo'), { env: { MIXFORGE_DEMO_DATA: data } });
    const ctx = makeBuildContext(spec, join(tmp, 'late'));
    await runBuildInProcess(ctx, { concurrency: 2 });
    const l = buildLayout(ctx.out);
    const listing = async () => (await readdir(ctx.out, { recursive: true })).sort();
    const before = await listing();
    assert.ok(!before.some((f) => f.startsWith('_build/buckets/')), 'finalize removed the scratch folders');
    // Before: route re-executed against the removed bucket indexes and failed the published build; ingest wrote its
    // part files again.
    for (const [stage, n] of [
      ['plan', 0],
      ['ingest', 0],
      ['select', 0],
      ['shuffle', 1],
      ['route', 0],
      ['write', 2],
    ] as const) {
      const marker = JSON.parse(await readFile(l.done(stage, n), 'utf8')) as { result: unknown };
      assert.deepEqual(
        await runJobOnce(ctx, stage, n),
        { ran: false, result: marker.result },
        `${stage} ${n}`,
      );
    }
    assert.deepEqual(await listing(), before, 'nothing written into the finished build');
  });

  it('an aborted ingest stops with the abort reason and leaves no done marker; rerun completes it', async () => {
    const data = await demoDataDir();
    const spec = await loadSpec(shippedSpecPath('demo'), { env: { MIXFORGE_DEMO_DATA: data } });
    const ctx = makeBuildContext(spec, join(tmp, 'out'));
    await writeBuildContext(ctx);
    await runJobOnce(ctx, 'plan', 0);
    const stop = new AbortController();
    stop.abort(new Error('time limit'));
    await assert.rejects(runJobOnce(ctx, 'ingest', 0, stop.signal), /time limit/);
    assert.equal(await isJobDone(ctx, 'ingest', 0), false);
    const again = await runJobOnce(ctx, 'ingest', 0);
    assert.equal(again.ran, true);
    assert.equal(await isJobDone(ctx, 'ingest', 0), true);
  });

  it('running ingest, shuffle and write jobs report their rows every PROGRESS_EVERY', async () => {
    const file = join(tmp, 'progress.json');
    // 120 text-only records (no images to decode), in two partitions of 60, written to one shard.
    const rows = Array.from({ length: 120 }, (_, i) =>
      JSON.stringify({
        id: `p${i}`,
        conversations: [
          { from: 'human', value: `question ${i}` },
          { from: 'gpt', value: `answer ${i}` },
        ],
      }),
    );
    await writeFile(file, `[${rows.join(',')}]`);
    const spec = parseSpec(
      `name: progress\nseed: 1\noutput:\n  shard_rows: 1000\ncomponents:\n  - name: p\n    source:\n      format: llava-json\n      uris: ["${file}"]\n`,
      { file: 'progress.yaml', env: {} },
    );
    const ctx = makeBuildContext(spec, join(tmp, 'progress-out'), { partitionRecords: 60 });
    const events: BuildEvent[] = [];
    const manifest = await runBuildInProcess(ctx, { concurrency: 1, onEvent: (e) => events.push(e) });
    assert.equal(manifest.totals.rows, 120);
    assert.equal(PROGRESS_EVERY, 50);
    const progress = events.flatMap((e) =>
      e.type === 'job-progress' ? [`${e.stage} ${e.n}: ${e.rows}`] : [],
    );
    // ingest: records read; shuffle: rows routed; write: rows gathered before its last bucket range.
    assert.deepEqual(progress, [
      'ingest 0: 50',
      'ingest 1: 50',
      'shuffle 0: 50',
      'shuffle 1: 50',
      'write 0: 60',
    ]);
    // Each job's progress comes before its job-done.
    for (const [i, e] of events.entries())
      if (e.type === 'job-progress')
        assert.ok(
          events.findIndex((d) => d.type === 'job-done' && d.stage === e.stage && d.n === e.n) > i,
          `${e.stage} ${e.n}`,
        );
  });

  it('ingest reads uncompressed parquet into recycled memory and releases it only when done: shards hold the source bytes', async () => {
    // Noise PNGs (~270 KB, kept as they are, so the part file copies them straight out of the chunk), 12 rows a
    // group: each image chunk is past 2 MiB, read on its own into memory the reader lends (released memory poisoned).
    const pngs = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        sharp({
          create: {
            width: 300,
            height: 300,
            channels: 3,
            background: '#888',
            noise: { type: 'gaussian', mean: 128, sigma: 40 + i },
          },
        })
          .png({ compressionLevel: 0 })
          .toBuffer(),
      ),
    );
    const file = join(tmp, 'recap-lent', 'train.parquet');
    await mkdir(join(tmp, 'recap-lent'), { recursive: true });
    await writeImageConversationParquet(
      file,
      pngs.map((bytes, i) => ({
        id: `r${i}`,
        image: { bytes, path: null },
        conversations: [
          { from: 'human', value: '<image>\nDescribe.' },
          { from: 'gpt', value: `Noise number ${i}.` },
        ],
        data_source: null,
      })),
      { compression: 'uncompressed', rowGroupSize: 12 },
    );
    const handle = await openParquet(file);
    assert.ok(Number(handle.metadata.row_groups[0].columns[1].meta_data?.total_compressed_size) > 2 << 20);
    const spec = parseSpec(
      `name: lent\nseed: 1\noutput:\n  shard_rows: 1000\ncomponents:\n  - name: r\n    source:\n      format: llava-recap\n      uris: ["${file}"]\n`,
      { file: 'lent.yaml', env: {} },
    );
    poisonReleasedMemory(true);
    try {
      const ctx = makeBuildContext(spec, join(tmp, 'lent-out'), { partitionRecords: 24 });
      const manifest = await runBuildInProcess(ctx, { concurrency: 2 });
      assert.equal(manifest.totals.quarantined, 0);
      const stored = new Map<string, string>();
      for (const shard of manifest.shards)
        for await (const sample of readShardSamples(join(ctx.out, shard.path)))
          stored.set(sample.id, Buffer.from(sample.images[0].bytes).toString('base64'));
      assert.equal(stored.size, 30);
      pngs.forEach((png, i) => {
        assert.equal(stored.get(`r/r${i}`), png.toString('base64'), `r${i}`);
      });
    } finally {
      poisonReleasedMemory(false);
    }
  });

  it('route: the same range lists in one pass or many, every row routed once; write rejects a wrong count', async () => {
    const data = await demoDataDir();
    const spec = await loadSpec(shippedSpecPath('demo'), { env: { MIXFORGE_DEMO_DATA: data } });
    const ctx = makeBuildContext(spec, join(tmp, 'routed'), { keepIntermediate: true, partitionRecords: 7 });
    const manifest = await runBuildInProcess(ctx, { concurrency: 2 });
    const layout = buildLayout(ctx.out);
    const shards = manifest.totals.shards;
    const read = async (s: number) => readFile(layout.shardRoute(s), 'utf8');
    const onePass = await Promise.all(Array.from({ length: shards }, (_, s) => read(s)));

    const many = await runRoute(ctx, undefined, 5);
    assert.ok(many.passes > 1, `expected several passes, got ${many.passes}`);
    assert.deepEqual(await Promise.all(Array.from({ length: shards }, (_, s) => read(s))), onePass);

    // Every (part, shard) range of the bucket indexes appears in exactly one route, and the rows add up.
    const plan = JSON.parse(await readFile(layout.plan, 'utf8')) as { partitions: unknown[] };
    const fromIndexes = new Set<string>();
    for (let n = 0; n < plan.partitions.length; n++) {
      const index = JSON.parse(await readFile(layout.bucketIndex(n), 'utf8')) as BucketIndex;
      for (const [s, [offset, length, rows]] of Object.entries(index.shards))
        fromIndexes.add(`${s}/${n}/${offset}/${length}/${rows}`);
    }
    const fromRoutes = new Set<string>();
    let rows = 0;
    for (const [s, text] of onePass.entries()) {
      const route = JSON.parse(text) as ShardRoute;
      assert.equal(route.shard, s);
      for (const e of route.entries) {
        fromRoutes.add(`${s}/${e.part}/${e.offset}/${e.length}/${e.rows}`);
        rows += e.rows;
      }
    }
    assert.deepEqual(fromRoutes, fromIndexes);
    assert.equal(rows, manifest.totals.rows);
    assert.equal(many.entries, fromIndexes.size);

    const route = JSON.parse(onePass[0]) as ShardRoute;
    route.entries[0].rows += 1;
    await writeFile(layout.shardRoute(0), JSON.stringify(route));
    await assert.rejects(
      runWrite(ctx, 0),
      /shard 0: bucket of part \d+ holds \d+ rows at .* its index says \d+/,
    );
  });
});
