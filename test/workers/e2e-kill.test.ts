// The acceptance test: a real build of the demo mixture on S3 (s3rver on loopback) through a private Redis
// and three `mixforge worker` processes, with workers holding jobs killed by SIGKILL and replaced during the build.
// Every shard, the quarantine and the manifest must be byte-identical to the in-process build of the same spec.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { readManifest } from '../../manifests/manifest.ts';
import type { BuildEvent } from '../../pipelines/events.ts';
import { runBuildInProcess } from '../../pipelines/executor-inprocess.ts';
import { runBuildOnQueue } from '../../workers/executor-bullmq.ts';
import { BuildQueues, readBuildStatus } from '../../workers/status.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { startS3, type TestS3 } from '../helpers/s3-server.ts';
import { killWorkersDuringBuild } from './chaos.ts';
import { demoContext, outputDigests, startCliWorker, uploadDemoData } from './demo-fleet.ts';
import type { WorkerProcess } from './fleet.ts';

describe('demo build on 3 worker processes with kill -9 (S3 + Redis on loopback)', () => {
  let s3: TestS3;
  let redis: TestRedis;
  let client: Redis;
  let queues: BuildQueues;
  const fleet: WorkerProcess[] = [];

  before(async () => {
    [s3, redis] = await Promise.all([startS3(['data', 'out']), startRedis()]);
    client = new Redis(redis.url, { maxRetriesPerRequest: null });
    client.on('error', () => undefined);
    queues = new BuildQueues(client);
    await uploadDemoData('s3://data/demo');
  });
  after(async () => {
    await Promise.all(fleet.map((w) => w.stop()));
    await queues.close();
    client.disconnect();
    await redis.stop();
    await s3.stop();
  });

  it('finishes byte-identical to the in-process build: 0 samples lost, 0 duplicated', async (t) => {
    const t0 = Date.now();
    const refCtx = await demoContext('s3://data/demo', 's3://out/in-process');
    // The workers start (a few seconds each) while the reference builds.
    const [ref, workers] = await Promise.all([
      runBuildInProcess(refCtx, { concurrency: 2 }),
      Promise.all(['w0', 'w1', 'w2'].map((n) => startCliWorker(n, redis.url, s3.env))),
    ]);
    fleet.push(...workers);
    t.diagnostic(`reference build and worker start: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const t1 = Date.now();
    const ctx = await demoContext('s3://data/demo', 's3://out/fleet');
    const events: BuildEvent[] = [];
    const building = runBuildOnQueue(ctx, { redis: redis.url, onEvent: (e) => events.push(e), pollMs: 100 });
    const killed = await killWorkersDuringBuild(
      queues,
      ctx.buildId,
      fleet,
      (i) => startCliWorker(`r${i}`, redis.url, s3.env),
      { kills: 3, until: building, pauseMs: 500 },
    );
    const manifest = await building;
    t.diagnostic(
      `fleet build with ${killed.length} kills (${killed.join(', ')}): ${((Date.now() - t1) / 1000).toFixed(1)} s`,
    );
    assert.ok(killed.length >= 2, `only ${killed.length} kills landed inside jobs`);

    assert.ok(manifest, 'the followed build returns its manifest');
    assert.equal(manifest.totals.rows, ref.totals.rows);
    assert.ok(ref.totals.rows > 100, `demo build has ${ref.totals.rows} rows`);
    const [mine, theirs] = await Promise.all([outputDigests(ctx.out), outputDigests(refCtx.out)]);
    assert.ok(
      [...theirs.keys()].some((k) => k.startsWith('shards/')),
      'reference has shards',
    );
    assert.deepEqual(mine, theirs, 'every output object byte-identical (shards, quarantine, manifest)');
    assert.deepEqual(await readManifest(ctx.out), await readManifest(refCtx.out));

    const status = await readBuildStatus(queues, ctx.buildId);
    assert.equal(status.state, 'done');
    for (const s of status.steps) assert.equal(s.counts.failed, 0, `${s.step} has failed jobs`);
    const done = events
      .filter((e) => e.type === 'stage-done')
      .map((e) => (e.type === 'stage-done' ? e.stage : ''));
    assert.deepEqual(done, ['plan', 'ingest', 'select', 'shuffle', 'route', 'write', 'finalize']);
    assert.equal(events.at(-1)?.type, 'build-done');
  });
});
