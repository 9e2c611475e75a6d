// Redis (append-only persistence) is restarted in the middle of a build run by worker processes; the workers and
// the follower reconnect and the build completes identically to the in-process build.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { submitBuild } from '../../workers/control.ts';
import { followBuild } from '../../workers/executor-bullmq.ts';
import { readBuildStatus } from '../../workers/status.ts';
import { readCountingManifest } from './counting-build.ts';
import { useCountingFleet } from './counting-fleet.ts';

describe('Redis restart during a build (counting build, 2 worker processes)', () => {
  const suite = useCountingFleet({
    params: { partitions: 6, recordsPerPartition: 50, shardRows: 60, delayMs: 300 },
    redis: { appendonly: true, appendfsync: 'always' },
    tmpPrefix: 'mixforge-restart-',
    lockDurationMs: 3000,
    stalledIntervalMs: 1000,
  });

  it('completes identically after Redis goes away and comes back mid-build', async () => {
    const { queues, redis, fleet } = suite;
    const { expected, ctx } = await suite.referenceAndBuild('counting-restart');
    for (const name of ['w0', 'w1']) fleet.push(await suite.startWorker(name));
    await submitBuild(queues, { buildId: ctx.buildId, out: ctx.out, retry: { attempts: 5, backoffMs: 200 } });
    const following = followBuild(queues, ctx.buildId, { pollMs: 50 });
    following.catch(() => undefined);
    // Restart once the shuffle stage is under way: plan, ingest and select are then only in Redis's persistence.
    for (;;) {
      const s = await readBuildStatus(queues, ctx.buildId);
      const shuffle = s.steps.find((x) => x.step === 'shuffle');
      if ((shuffle?.counts.active ?? 0) + (shuffle?.counts.completed ?? 0) > 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const completed = async () =>
      (await readBuildStatus(queues, ctx.buildId)).steps.reduce((a, s) => a + s.counts.completed, 0);
    const before = await completed();
    await redis.restart({ downMs: 1000 });
    // The restarted Redis still knows every job that had completed (the record of work done survives).
    assert.ok((await completed()) >= before, 'completed jobs were lost in the restart');
    assert.ok(
      before >= 12,
      `restart came after plan, ingest and near-dedup (plan and bands) (${before} jobs completed)`,
    );
    await following;

    const manifest = await readCountingManifest(ctx.out);
    assert.deepEqual(manifest, expected);
    const status = await readBuildStatus(queues, ctx.buildId);
    assert.equal(status.state, 'done');
    assert.deepEqual(
      status.steps.map((s) => `${s.step}:${s.counts.completed}`),
      [
        'plan:1',
        'contamination-index:1',
        'ingest:6',
        'near-dedup-plan:1',
        'near-dedup-band:2',
        'near-dedup:1',
        'select:1',
        'shuffle:6',
        'route:1',
        'write:5',
        'finalize:1',
      ],
    );
  });
});
