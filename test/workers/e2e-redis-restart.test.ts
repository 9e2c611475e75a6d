// A real demo build on S3 through two `mixforge worker` processes while Redis (append-only persistence) is
// restarted mid-build: workers and follower reconnect, and every output is byte-identical to the in-process build.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runBuildInProcess } from '../../pipelines/executor-inprocess.ts';
import { runBuildOnQueue } from '../../workers/executor-bullmq.ts';
import { readBuildStatus } from '../../workers/status.ts';
import { demoContext, outputDigests, useDemoFleet } from './demo-fleet.ts';

describe('demo build across a Redis restart (S3 + Redis with AOF on loopback)', () => {
  const suite = useDemoFleet({ appendonly: true, appendfsync: 'always' });

  it('completes identically after Redis goes away during ingest and comes back', async () => {
    const { queues, redis, fleet } = suite;
    const refCtx = await demoContext('s3://data/demo', 's3://out/in-process');
    const [, workers] = await Promise.all([
      runBuildInProcess(refCtx, { concurrency: 2 }),
      Promise.all(['w0', 'w1'].map(suite.startWorker)),
    ]);
    fleet.push(...workers);
    const ctx = await demoContext('s3://data/demo', 's3://out/fleet');
    const building = runBuildOnQueue(ctx, { redis: redis.url, pollMs: 100 });
    building.catch(() => undefined);

    // Restart while ingest jobs run: plan's completion and the ingest flow then exist only in Redis's AOF.
    const ingestRunning = async () => {
      const s = await readBuildStatus(queues, ctx.buildId);
      const ingest = s.steps.find((x) => x.step === 'ingest');
      return (ingest?.counts.active ?? 0) + (ingest?.counts.completed ?? 0) > 0;
    };
    while (!(await ingestRunning())) await new Promise((r) => setTimeout(r, 20));
    await redis.restart({ downMs: 1500 });
    const afterRestart = await readBuildStatus(queues, ctx.buildId);
    assert.equal(
      afterRestart.steps.find((s) => s.step === 'plan')?.counts.completed,
      1,
      'plan completion survived',
    );
    assert.ok(afterRestart.steps.find((s) => s.step === 'ingest')?.total, 'the ingest flow survived');

    const manifest = await building;
    assert.ok(manifest);
    const [mine, theirs] = await Promise.all([outputDigests(ctx.out), outputDigests(refCtx.out)]);
    assert.ok(
      [...theirs.keys()].some((k) => k.startsWith('shards/')),
      'reference has shards',
    );
    assert.deepEqual(mine, theirs, 'every output object byte-identical (shards, quarantine, manifest)');
    const status = await readBuildStatus(queues, ctx.buildId);
    assert.equal(status.state, 'done');
  });
});
