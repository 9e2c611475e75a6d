// Three worker processes on a private Redis; workers holding jobs are killed with SIGKILL during the build and
// replaced. The build still finishes, byte-identical to the in-process build: no record lost or duplicated.
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
import { killWorkersDuringBuild } from './chaos.ts';
import {
  type CountingBuildParams,
  type CountingManifest,
  countingContext,
  runCountingInProcess,
  writeCountingContext,
} from './counting-build.ts';
import { spawnWorker, type WorkerProcess } from './fleet.ts';

const WORKER = join(import.meta.dirname, 'counting-worker.ts');
const PARAMS: CountingBuildParams = { partitions: 6, recordsPerPartition: 50, shardRows: 60, delayMs: 500 };

describe('kill -9 workers during a build (counting build, 3 worker processes)', () => {
  let redis: TestRedis;
  let client: Redis;
  let queues: BuildQueues;
  let root: string;
  const fleet: WorkerProcess[] = [];

  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url, { maxRetriesPerRequest: null });
    client.on('error', () => undefined);
    queues = new BuildQueues(client);
    root = await mkdtemp(join(tmpdir(), 'mixforge-kill-'));
  });
  after(async () => {
    await Promise.all(fleet.map((w) => w.stop()));
    await queues.close();
    client.disconnect();
    await redis.stop();
    await rm(root, { recursive: true, force: true });
  });

  const start = (name: string) =>
    spawnWorker(
      name,
      WORKER,
      [
        JSON.stringify({
          redis: redis.url,
          name,
          params: PARAMS,
          lockDurationMs: 1500,
          stalledIntervalMs: 500,
        }),
      ],
      { readyText: /^ready$/m },
    );

  it('finishes with every shard identical to the in-process build', async () => {
    const expected = await runCountingInProcess(countingContext('counting-ref', join(root, 'ref')), PARAMS);
    const ctx = countingContext('counting-kill', join(root, 'out'));
    await writeCountingContext(ctx);
    fleet.push(...(await Promise.all(['w0', 'w1', 'w2'].map(start))));

    await submitBuild(queues, { buildId: ctx.buildId, out: ctx.out, retry: { attempts: 3, backoffMs: 100 } });
    const following = followBuild(queues, ctx.buildId, { pollMs: 50 });
    const killed = await killWorkersDuringBuild(queues, ctx.buildId, fleet, (i) => start(`r${i}`), {
      kills: 3,
      until: following,
      pauseMs: 300,
    });
    await following;

    assert.equal(killed.length, 3, `killed ${killed.join(', ')}`);
    const manifest = JSON.parse(await readFile(join(ctx.out, 'manifest.json'), 'utf8')) as CountingManifest;
    assert.deepEqual(manifest, expected);
    assert.equal(manifest.total, 300);
    assert.equal(
      manifest.shards.reduce((a, s) => a + s.rows, 0),
      300,
    );
    // The killed jobs ran again elsewhere: more executions than jobs (plan, 6 ingest, select, 6 shuffle, route,
    // 5 write, finalize).
    const runs = (await readFile(join(ctx.out, '_build', 'runs.log'), 'utf8')).trim().split('\n');
    assert.equal(new Set(runs).size, 21);
    assert.ok(runs.length > 21, `expected re-executions after kills, got ${runs.length} runs`);
    const status = await readBuildStatus(queues, ctx.buildId);
    assert.equal(status.state, 'done');
    for (const s of status.steps) assert.equal(s.counts.failed, 0, `${s.step} failed`);
  });
});
