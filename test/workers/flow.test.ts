// The BullMQ executor on a private Redis with in-process workers running the counting build: the whole graph runs
// level by level, retries transient errors with backoff, fails deterministic errors at once, time limits, status,
// retry-failed, cancel, hand-back on shutdown, and idempotent resubmission.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { SourceFileError } from '../../core/errors.ts';
import type { BuildContext } from '../../pipelines/context.ts';
import type { BuildEvent } from '../../pipelines/events.ts';
import { STAGES, type Stage } from '../../pipelines/graph.ts';
import { cancelBuild, retryFailed, submitBuild } from '../../workers/control.ts';
import { BuildFailedError, followBuild } from '../../workers/executor-bullmq.ts';
import { bullJobId, type RetryPolicy } from '../../workers/queues.ts';
import { type BuildQueues, readBuildStatus } from '../../workers/status.ts';
import { type BuildWorker, DEFAULT_WORKER_SETTINGS, startBuildWorker } from '../../workers/worker.ts';
import {
  type CountingBuildParams,
  countingBuild,
  countingContext,
  readCountingManifest,
  readCountingRuns,
  runCountingInProcess,
  sleep,
  writeCountingContext,
} from './counting-build.ts';
import { usePrivateQueues } from './private-queues.ts';

const PARAMS: CountingBuildParams = { partitions: 3, recordsPerPartition: 40, shardRows: 50, delayMs: 0 };
const RETRY: RetryPolicy = { attempts: 3, backoffMs: 50 };

describe('BullMQ executor (counting build, in-process workers)', () => {
  const suite = usePrivateQueues({ tmpPrefix: 'mixforge-flow-' });
  let queues: BuildQueues;
  before(() => {
    queues = suite.queues;
  });
  let seq = 0;

  async function newBuild() {
    seq++;
    const ctx = countingContext(`counting-${seq}`, join(suite.root, `b${seq}`));
    await writeCountingContext(ctx);
    const ref = await mkdtemp(join(suite.root, 'ref-'));
    const refCtx = countingContext(`counting-ref-${seq}`, ref);
    const expected = await runCountingInProcess(refCtx, PARAMS);
    return { ctx, expected };
  }

  async function worker(
    jobs: ReturnType<typeof countingBuild>,
    extra: Partial<Parameters<typeof startBuildWorker>[0]> = {},
  ) {
    return startBuildWorker({
      ...DEFAULT_WORKER_SETTINGS,
      redis: suite.redis.url,
      jobs,
      lockDurationMs: 3000,
      stalledIntervalMs: 1000,
      cancelPollMs: 100,
      log: () => undefined,
      ...extra,
    });
  }

  /** Submits the build, follows it to its end while `workers` serve it, then closes them; returns its events. */
  async function submitAndFollow(ctx: BuildContext, workers: BuildWorker[], pollMs: number) {
    const events: BuildEvent[] = [];
    try {
      await submitBuild(queues, { buildId: ctx.buildId, out: ctx.out, retry: RETRY });
      await followBuild(queues, ctx.buildId, { onEvent: (e) => events.push(e), pollMs });
    } finally {
      await Promise.all(workers.map((w) => w.close()));
    }
    return events;
  }

  it('runs the whole graph level by level with the in-process events, and equals the in-process build', async () => {
    const { ctx, expected } = await newBuild();
    const w = await worker(countingBuild(PARAMS), { concurrency: 2 });
    const events = await submitAndFollow(ctx, [w], 50);
    assert.deepEqual(await readCountingManifest(ctx.out), expected);
    assert.equal(expected.total, 120);
    assert.equal(expected.shards.length, 3);
    // One start and one done per stage, in build order, with every job reported once.
    const starts = events
      .filter((e) => e.type === 'stage-start')
      .map((e) => (e.type === 'stage-start' ? `${e.stage}:${e.total}` : ''));
    assert.deepEqual(starts, [
      'plan:1',
      'contamination-index:1',
      'ingest:3',
      'near-dedup-plan:1',
      'near-dedup-band:2',
      'near-dedup:1',
      'select:1',
      'shuffle:3',
      'route:1',
      'write:3',
      'finalize:1',
    ]);
    const doneStages = events
      .filter((e) => e.type === 'stage-done')
      .map((e) => (e.type === 'stage-done' ? `${e.stage}:${e.rows}` : ''));
    assert.deepEqual(doneStages, [
      'plan:0',
      'contamination-index:0',
      'ingest:120',
      'near-dedup-plan:0',
      'near-dedup-band:0',
      'near-dedup:0',
      'select:120',
      'shuffle:120',
      'route:0',
      'write:120',
      'finalize:120',
    ]);
    const jobDone = events.filter((e) => e.type === 'job-done');
    assert.equal(jobDone.length, 18);
    // Every job ran exactly once.
    assert.equal((await readCountingRuns(ctx.out)).length, 18);
    const status = await readBuildStatus(queues, ctx.buildId);
    assert.equal(status.state, 'done');
    assert.deepEqual(
      status.steps.map((s) => `${s.step}:${s.counts.completed}/${s.total}`),
      [
        'plan:1/1',
        'contamination-index:1/1',
        'ingest:3/3',
        'near-dedup-plan:1/1',
        'near-dedup-band:2/2',
        'near-dedup:1/1',
        'select:1/1',
        'shuffle:3/3',
        'route:1/1',
        'write:3/3',
        'finalize:1/1',
      ],
    );
    // Job ids are `<buildId>.<step>.<n>` (BullMQ rejects ':' in custom ids).
    const j = await queues.job(ctx.buildId, 'write', 2);
    assert.equal(j?.id, `${ctx.buildId}.write.2`);
    assert.deepEqual(j?.data, { out: ctx.out, buildId: ctx.buildId, step: 'write', n: 2 });
  });

  it('a running job’s progress reaches the follower before the job is done', async () => {
    const { ctx, expected } = await newBuild();
    // ingest 1 reports 20 of its 40 records, then works for 1.5 s: many 50 ms polls see it active.
    const w = await worker(countingBuild({ ...PARAMS, slow: { 'ingest.1': 1500 } }), { concurrency: 2 });
    const events = await submitAndFollow(ctx, [w], 50);
    assert.deepEqual(await readCountingManifest(ctx.out), expected);
    const progress = events.findIndex((e) => e.type === 'job-progress' && e.stage === 'ingest' && e.n === 1);
    assert.ok(progress >= 0, 'a job-progress event for ingest 1');
    assert.deepEqual(events[progress], { type: 'job-progress', stage: 'ingest', n: 1, rows: 20 });
    const done = events.findIndex((e) => e.type === 'job-done' && e.stage === 'ingest' && e.n === 1);
    assert.ok(done > progress, 'progress came before the job was done');
  });

  it('enqueueing the same build twice runs each job once', async () => {
    const { ctx, expected } = await newBuild();
    const ref = { buildId: ctx.buildId, out: ctx.out, retry: RETRY };
    await Promise.all([submitBuild(queues, ref), submitBuild(queues, ref)]);
    const w1 = await worker(countingBuild(PARAMS));
    const w2 = await worker(countingBuild(PARAMS));
    await submitAndFollow(ctx, [w1, w2], 50);
    assert.deepEqual(await readCountingManifest(ctx.out), expected);
    const runs = await readCountingRuns(ctx.out);
    assert.equal(new Set(runs).size, runs.length, `a job ran twice: ${runs.join(' ')}`);
  });

  it('retries a transient error with backoff, reporting each failed attempt', async () => {
    const { ctx, expected } = await newBuild();
    let failures = 0;
    const jobs = countingBuild(PARAMS, (stage, n) => {
      if (stage === 'shuffle' && n === 1 && failures < 2) {
        failures++;
        throw new Error(`S3 503 SlowDown (${failures})`);
      }
    });
    const events = await submitAndFollow(ctx, [await worker(jobs)], 20);
    assert.deepEqual(await readCountingManifest(ctx.out), expected);
    // attemptsMade counts the successful attempt too.
    const job = await queues.job(ctx.buildId, 'shuffle', 1);
    assert.equal(job?.attemptsMade, 3);
    const runs = (await readCountingRuns(ctx.out)).filter((r) => r === 'shuffle.1');
    assert.equal(runs.length, 3);
    const failedEvents = events.filter((e) => e.type === 'job-failed');
    assert.ok(failedEvents.length >= 1, 'a failed attempt is reported');
    for (const e of failedEvents) assert.match(e.type === 'job-failed' ? e.error : '', /S3 503 SlowDown/);
  });

  it('fails a deterministic error at once, names it, and retry-failed finishes the build after the fix', async () => {
    const { ctx, expected } = await newBuild();
    let broken = true;
    const jobs = countingBuild(PARAMS, (stage, n) => {
      if (broken && stage === 'ingest' && n === 2)
        throw new SourceFileError('s3://data/part-2.parquet', 'missing column "conversations"');
    });
    const w = await worker(jobs);
    try {
      await submitBuild(queues, { buildId: ctx.buildId, out: ctx.out, retry: RETRY });
      await assert.rejects(followBuild(queues, ctx.buildId, { pollMs: 20 }), (err: unknown) => {
        assert.ok(err instanceof BuildFailedError);
        assert.match(
          err.message,
          /ingest 2: SourceFileError: s3:\/\/data\/part-2.parquet: missing column "conversations"/,
        );
        return true;
      });
      // Not retried: one execution only.
      assert.deepEqual(
        (await readCountingRuns(ctx.out)).filter((r) => r === 'ingest.2'),
        ['ingest.2'],
      );
      const status = await readBuildStatus(queues, ctx.buildId);
      assert.equal(status.state, 'failed');
      const ingest = status.steps.find((s) => s.step === 'ingest');
      assert.equal(ingest?.counts.failed, 1);
      assert.equal(ingest?.counts.completed, 2);
      assert.match(ingest?.failures[0]?.reason ?? '', /missing column/);
      assert.equal(
        status.steps.find((s) => s.step === 'near-dedup-plan')?.counts.failed,
        1,
        'the parent fails with its child',
      );

      broken = false;
      const retried = await retryFailed(queues, ctx.buildId);
      assert.deepEqual(
        retried.sort(),
        [bullJobId(ctx.buildId, 'ingest', 2), bullJobId(ctx.buildId, 'near-dedup-plan', 0)].sort(),
      );
      await followBuild(queues, ctx.buildId, { pollMs: 20 });
    } finally {
      await w.close();
    }
    assert.deepEqual(await readCountingManifest(ctx.out), expected);
    // The completed ingest jobs were not run again.
    assert.deepEqual((await readCountingRuns(ctx.out)).filter((r) => r.startsWith('ingest.')).sort(), [
      'ingest.0',
      'ingest.1',
      'ingest.2',
      'ingest.2',
    ]);
  });

  it('fails an attempt that exceeds the time limit and retries it', async () => {
    const { ctx, expected } = await newBuild();
    let slowOnce = true;
    const jobs = countingBuild(PARAMS, async (stage: Stage, n: number) => {
      if (stage === 'write' && n === 0 && slowOnce) {
        slowOnce = false;
        await sleep(1500);
      }
    });
    await submitAndFollow(ctx, [await worker(jobs, { jobTimeoutMs: 500 })], 20);
    assert.deepEqual(await readCountingManifest(ctx.out), expected);
    const job = await queues.job(ctx.buildId, 'write', 0);
    assert.equal(job?.attemptsMade, 2);
    assert.match(job?.failedReason ?? '', /time limit of 1 s exceeded|time limit of 0 s exceeded/);
  });

  it('cancel stops a running build: running jobs fail without retry and every job is removed', async () => {
    const { ctx } = await newBuild();
    const w = await worker(
      countingBuild({ ...PARAMS, slow: { 'ingest.0': 60_000, 'ingest.1': 60_000, 'ingest.2': 60_000 } }),
      {
        concurrency: 3,
      },
    );
    try {
      await submitBuild(queues, { buildId: ctx.buildId, out: ctx.out, retry: RETRY });
      const following = followBuild(queues, ctx.buildId, { pollMs: 20 });
      following.catch(() => undefined);
      // Wait until the ingest jobs run.
      for (let i = 0; i < 200; i++) {
        const s = await readBuildStatus(queues, ctx.buildId);
        if (s.steps.find((x) => x.step === 'ingest')?.counts.active === 3) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      const r = await cancelBuild(queues, ctx.buildId, { waitMs: 5000 });
      assert.deepEqual(r.stillActive, []);
      assert.ok(r.removed >= 4, `removed ${r.removed}`);
      await assert.rejects(following, /was cancelled/);
      const status = await readBuildStatus(queues, ctx.buildId);
      assert.equal(status.state, 'cancelled');
      for (const s of status.steps)
        assert.equal(s.counts.missing, s.total ?? 0, `${s.step} jobs left in Redis`);
      // The cancelled ingest jobs ran once each (no retry).
      assert.deepEqual((await readCountingRuns(ctx.out)).filter((x) => x.startsWith('ingest.')).sort(), [
        'ingest.0',
        'ingest.1',
        'ingest.2',
      ]);
    } finally {
      await w.close();
    }
  });

  it('a second shutdown signal hands running jobs back: another worker finishes them without a failed attempt', async () => {
    const { ctx, expected } = await newBuild();
    let w1: BuildWorker | undefined;
    let w2: BuildWorker | undefined;
    let handedBack = false;
    // Worker 1 serves only ingest and gets stuck in ingest 0; worker 2 starts once it is handed back.
    w1 = await worker(
      countingBuild(PARAMS, async (stage, n) => {
        if (stage === 'ingest' && n === 0 && !handedBack) await sleep(30_000);
      }),
      { steps: ['ingest'], concurrency: 3 },
    );
    const w0 = await worker(countingBuild(PARAMS), {
      steps: STAGES.filter((s) => s !== 'ingest'),
    });
    try {
      await submitBuild(queues, { buildId: ctx.buildId, out: ctx.out, retry: RETRY });
      for (let i = 0; i < 400; i++) {
        if ((await queues.snapshot(ctx.buildId, 'ingest', 0)).state === 'active') break;
        await new Promise((r) => setTimeout(r, 25));
      }
      await new Promise((r) => setTimeout(r, 200));
      handedBack = true;
      const closing = w1.close();
      await w1.close({ handBack: true });
      await closing;
      w1 = undefined;
      const snap = await queues.snapshot(ctx.buildId, 'ingest', 0);
      assert.ok(snap.state === 'delayed' || snap.state === 'waiting', snap.state);
      assert.equal(snap.attemptsMade, 0);
      w2 = await worker(countingBuild(PARAMS), { steps: ['ingest'] });
      await followBuild(queues, ctx.buildId, { pollMs: 20 });
    } finally {
      await Promise.all([w0.close(), w1?.close(), w2?.close()]);
    }
    assert.deepEqual(await readCountingManifest(ctx.out), expected);
    // One attempt (the one that completed): the handed-back run did not count as a failure.
    const job = await queues.job(ctx.buildId, 'ingest', 0);
    assert.equal(job?.attemptsMade, 1);
    assert.equal(job?.failedReason, undefined);
  });
});
