// The acceptance test: a real build of the demo mixture on S3 (s3rver on loopback) through a private Redis
// and three `mixforge worker` processes, with workers holding jobs killed by SIGKILL and replaced during the build.
// Every shard, the quarantine and the manifest must be byte-identical to the in-process build of the same spec.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readManifest } from '../../manifests/manifest.ts';
import type { BuildEvent } from '../../pipelines/events.ts';
import { runBuildInProcess } from '../../pipelines/executor-inprocess.ts';
import { STAGES } from '../../pipelines/graph.ts';
import { runBuildOnQueue } from '../../workers/executor-bullmq.ts';
import { readBuildStatus } from '../../workers/status.ts';
import { killWorkersDuringBuild } from './chaos.ts';
import { demoContext, outputDigests, useDemoFleet } from './demo-fleet.ts';

describe('demo build on 3 worker processes with kill -9 (S3 + Redis on loopback)', () => {
  const suite = useDemoFleet();
  const { fleet, startWorker } = suite;

  it('finishes byte-identical to the in-process build: 0 samples lost, 0 duplicated', async (t) => {
    const { queues, redis } = suite;
    const t0 = Date.now();
    const refCtx = await demoContext('s3://data/demo', 's3://out/in-process');
    // The workers start (a few seconds each) while the reference builds.
    const [ref, workers] = await Promise.all([
      runBuildInProcess(refCtx, { concurrency: 2 }),
      Promise.all(['w0', 'w1', 'w2'].map(startWorker)),
    ]);
    fleet.push(...workers);
    t.diagnostic(`reference build and worker start: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const t1 = Date.now();
    const ctx = await demoContext('s3://data/demo', 's3://out/fleet');
    const events: BuildEvent[] = [];
    const building = runBuildOnQueue(ctx, { redis: redis.url, onEvent: (e) => events.push(e), pollMs: 100 });
    const killed = await killWorkersDuringBuild(queues, ctx.buildId, fleet, (i) => startWorker(`r${i}`), {
      kills: 3,
      until: building,
      pauseMs: 500,
    });
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
    // The graph's order, which test/pipelines/graph.test.ts pins.
    assert.deepEqual(done, [...STAGES]);
    assert.equal(events.at(-1)?.type, 'build-done');
  });
});
