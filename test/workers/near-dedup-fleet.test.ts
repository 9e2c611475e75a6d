// near_dedup and decontaminate on the BullMQ executor (private Redis, two in-process workers running the real
// pipeline jobs): every published byte equals the in-process build of the same spec, and each near-duplicate band
// is a BullMQ job of its own whose failed or repeated attempts change nothing.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import type { MixtureSpec } from '../../manifests/spec-schema.ts';
import { makeBuildContext } from '../../pipelines/context.ts';
import { runBuildInProcess } from '../../pipelines/executor-inprocess.ts';
import { type BuildJobs, pipelineJobs } from '../../workers/build-jobs.ts';
import { runBuildOnQueue } from '../../workers/executor-bullmq.ts';
import { readBuildStatus } from '../../workers/status.ts';
import { DEFAULT_WORKER_SETTINGS, startBuildWorker } from '../../workers/worker.ts';
import { decontaminationSpec, writeNearDupFixtures } from '../helpers/near-dup-fixtures.ts';
import { publishedHashes } from '../helpers/published-hashes.ts';
import { usePrivateQueues } from './private-queues.ts';

describe('near_dedup and decontaminate on the BullMQ executor', () => {
  const suite = usePrivateQueues({ tmpPrefix: 'mixforge-near-fleet-' });
  let spec: MixtureSpec;
  let reference: Record<string, string>;

  before(async () => {
    await writeNearDupFixtures(suite.root);
    spec = decontaminationSpec(suite.root);
    const ref = await runBuildInProcess(makeBuildContext(spec, join(suite.root, 'in-process')), {
      concurrency: 2,
    });
    assert.ok(
      Object.keys(ref.components.find((c) => c.name === 'b')?.counts.dropped ?? {}).includes(
        'near-duplicate-text',
      ),
    );
    reference = publishedHashes(join(suite.root, 'in-process'));
  });

  /** Builds `spec` under `name` on two in-process workers running `jobs`; returns the build context. */
  async function fleetBuild(name: string, jobs: BuildJobs) {
    const workers = await Promise.all(
      [0, 1].map(() =>
        startBuildWorker({ ...DEFAULT_WORKER_SETTINGS, redis: suite.redis.url, jobs, log: () => undefined }),
      ),
    );
    try {
      const ctx = makeBuildContext(spec, join(suite.root, name), { partitionRecords: 3 });
      const manifest = await runBuildOnQueue(ctx, {
        redis: suite.redis.url,
        pollMs: 50,
        retry: { attempts: 3, backoffMs: 50 },
      });
      assert.ok(manifest);
      return ctx;
    } finally {
      await Promise.all(workers.map((w) => w.close()));
    }
  }

  it('publishes the same bytes as the in-process build', async () => {
    const ctx = await fleetBuild('fleet', await pipelineJobs());
    assert.deepEqual(publishedHashes(ctx.out), reference);
  });

  it('runs each band as its own job; a band whose attempt fails before or after committing changes nothing', async () => {
    const real = await pipelineJobs();
    const runs: string[] = [];
    const injected = new Set<string>();
    const jobs: BuildJobs = {
      ...real,
      async run(ctx, stage, n, signal, onProgress) {
        const id = `${stage}.${n}`;
        if (stage === 'near-dedup-band' && (n === 1 || n === 2) && !injected.has(id)) {
          injected.add(id);
          // Band 1 commits its pairs and marker, then its worker fails before BullMQ records it (a kill in that
          // window); band 2 fails before doing anything. Both are retried.
          if (n === 1) runs.push(`${id}:${(await real.run(ctx, stage, n, signal, onProgress)).ran}`);
          throw new Error(`injected failure of ${id}`);
        }
        const r = await real.run(ctx, stage, n, signal, onProgress);
        runs.push(`${id}:${r.ran}`);
        return r;
      },
    };
    const ctx = await fleetBuild('fleet-retry', jobs);
    assert.deepEqual(publishedHashes(ctx.out), reference);
    const bands = spec.near_dedup?.text.bands ?? 0;
    assert.equal(bands, 32);
    const status = await readBuildStatus(suite.queues, ctx.buildId);
    const step = status.steps.find((s) => s.step === 'near-dedup-band');
    assert.equal(step?.total, bands);
    assert.equal(step?.counts.completed, bands);
    // One BullMQ job per band, each completed; the two injected ones with one attempt more than the others.
    const once = (await suite.queues.snapshot(ctx.buildId, 'near-dedup-band', 0)).attemptsMade;
    for (let n = 0; n < bands; n++) {
      const snap = await suite.queues.snapshot(ctx.buildId, 'near-dedup-band', n);
      assert.equal(snap.state, 'completed', `band ${n}`);
      assert.equal(snap.attemptsMade, n === 1 || n === 2 ? once + 1 : once, `band ${n} attempts`);
    }
    const bandRuns = runs.filter((r) => r.startsWith('near-dedup-band.'));
    // Band 1's retry found its committed work and skipped it; every other band ran once.
    assert.deepEqual(
      bandRuns.filter((r) => r.startsWith('near-dedup-band.1:')),
      ['near-dedup-band.1:true', 'near-dedup-band.1:false'],
    );
    assert.equal(bandRuns.filter((r) => r.endsWith(':true')).length, bands);
  });
});
