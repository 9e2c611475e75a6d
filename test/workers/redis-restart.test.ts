// Redis (append-only persistence) is restarted in the middle of a build run by worker processes; the workers and
// the follower reconnect and the build completes identically to the in-process build.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { submitBuild } from '../../workers/control.ts';
import { followBuild } from '../../workers/executor-bullmq.ts';
import { BuildQueues, readBuildStatus } from '../../workers/status.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import {
  type CountingBuildParams,
  type CountingManifest,
  countingContext,
  runCountingInProcess,
  writeCountingContext,
} from './counting-build.ts';
import { spawnWorker, type WorkerProcess } from './fleet.ts';

const WORKER = join(import.meta.dirname, 'counting-worker.ts');
const PARAMS: CountingBuildParams = { partitions: 6, recordsPerPartition: 50, shardRows: 60, delayMs: 300 };

describe('Redis restart during a build (counting build, 2 worker processes)', () => {
  let redis: TestRedis;
  let client: Redis;
  let queues: BuildQueues;
  let root: string;
  const fleet: WorkerProcess[] = [];

  before(async () => {
    redis = await startRedis({ appendonly: true, appendfsync: 'always' });
    client = new Redis(redis.url, { maxRetriesPerRequest: null });
    client.on('error', () => undefined);
    queues = new BuildQueues(client);
    root = await mkdtemp(join(tmpdir(), 'mixforge-restart-'));
  });
  after(async () => {
    await Promise.all(fleet.map((w) => w.stop()));
    await queues.close();
    client.disconnect();
    await redis.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('completes identically after Redis goes away and comes back mid-build', async () => {
    const expected = await runCountingInProcess(countingContext('counting-ref', join(root, 'ref')), PARAMS);
    const ctx = countingContext('counting-restart', join(root, 'out'));
    await writeCountingContext(ctx);
    for (const name of ['w0', 'w1']) {
      fleet.push(
        await spawnWorker(
          name,
          WORKER,
          [
            JSON.stringify({
              redis: redis.url,
              name,
              params: PARAMS,
              lockDurationMs: 3000,
              stalledIntervalMs: 1000,
            }),
          ],
          { readyText: /^ready$/m },
        ),
      );
    }
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
    assert.ok(before >= 8, `restart came after plan, ingest and select (${before} jobs completed)`);
    await following;

    const manifest = JSON.parse(await readFile(join(ctx.out, 'manifest.json'), 'utf8')) as CountingManifest;
    assert.deepEqual(manifest, expected);
    const status = await readBuildStatus(queues, ctx.buildId);
    assert.equal(status.state, 'done');
    assert.deepEqual(
      status.steps.map((s) => `${s.step}:${s.counts.completed}`),
      ['plan:1', 'ingest:6', 'select:1', 'shuffle:6', 'route:1', 'write:5', 'finalize:1'],
    );
  });
});
