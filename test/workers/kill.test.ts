// Three worker processes on a private Redis; workers holding jobs are killed with SIGKILL during the build and
// replaced. The build still finishes, byte-identical to the in-process build: no record lost or duplicated.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GRAPH } from '../../pipelines/graph.ts';
import { submitBuild } from '../../workers/control.ts';
import { followBuild } from '../../workers/executor-bullmq.ts';
import { readBuildStatus } from '../../workers/status.ts';
import { killWorkersDuringBuild } from './chaos.ts';
import { COUNTING_BANDS, readCountingManifest, readCountingRuns } from './counting-build.ts';
import { useCountingFleet } from './counting-fleet.ts';

describe('kill -9 workers during a build (counting build, 3 worker processes)', () => {
  const suite = useCountingFleet({
    params: { partitions: 6, recordsPerPartition: 50, shardRows: 60, delayMs: 500 },
    tmpPrefix: 'mixforge-kill-',
    lockDurationMs: 1500,
    stalledIntervalMs: 500,
  });
  const { fleet, startWorker } = suite;

  it('finishes with every shard identical to the in-process build', async () => {
    const { queues } = suite;
    const { expected, ctx } = await suite.referenceAndBuild('counting-kill');
    fleet.push(...(await Promise.all(['w0', 'w1', 'w2'].map(startWorker))));

    await submitBuild(queues, { buildId: ctx.buildId, out: ctx.out, retry: { attempts: 3, backoffMs: 100 } });
    const following = followBuild(queues, ctx.buildId, { pollMs: 50 });
    const killed = await killWorkersDuringBuild(queues, ctx.buildId, fleet, (i) => startWorker(`r${i}`), {
      kills: 3,
      until: following,
      pauseMs: 300,
      // Jobs take 500 ms after logging their start: one running for 100–300 ms has logged and is not done, so
      // the kill interrupts it and it must run again.
      runningFor: [100, 300],
    });
    await following;

    assert.equal(killed.length, 3, `killed ${killed.join(', ')}`);
    const manifest = await readCountingManifest(ctx.out);
    assert.deepEqual(manifest, expected);
    assert.equal(manifest.total, 300);
    assert.equal(
      manifest.shards.reduce((a, s) => a + s.rows, 0),
      300,
    );
    // The killed jobs ran again elsewhere: more executions than jobs (one per stage, partition or shard).
    const fanOut = { one: 1, partitions: 6, bands: COUNTING_BANDS, shards: 5 };
    const jobs = GRAPH.reduce((n, stage) => n + fanOut[stage.fanOut], 0);
    const runs = await readCountingRuns(ctx.out);
    assert.equal(new Set(runs).size, jobs);
    assert.ok(
      runs.length > jobs,
      `expected re-executions after kills, got ${runs.length} runs for ${jobs} jobs`,
    );
    const status = await readBuildStatus(queues, ctx.buildId);
    assert.equal(status.state, 'done');
    for (const s of status.steps) assert.equal(s.counts.failed, 0, `${s.step} failed`);
  });
});
