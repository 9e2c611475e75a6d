// near_dedup and decontaminate on the BullMQ executor (private Redis, two in-process workers running the real
// pipeline jobs): every published byte equals the in-process build of the same spec.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeBuildContext } from '../../pipelines/context.ts';
import { runBuildInProcess } from '../../pipelines/executor-inprocess.ts';
import { pipelineJobs } from '../../workers/build-jobs.ts';
import { runBuildOnQueue } from '../../workers/executor-bullmq.ts';
import { DEFAULT_WORKER_SETTINGS, startBuildWorker } from '../../workers/worker.ts';
import { decontaminationSpec, writeNearDupFixtures } from '../helpers/near-dup-fixtures.ts';
import { publishedHashes } from '../helpers/published-hashes.ts';
import { usePrivateQueues } from './private-queues.ts';

describe('near_dedup and decontaminate on the BullMQ executor', () => {
  const suite = usePrivateQueues({ tmpPrefix: 'mixforge-near-fleet-' });

  it('publishes the same bytes as the in-process build', async () => {
    await writeNearDupFixtures(suite.root);
    const spec = decontaminationSpec(suite.root);
    const ref = await runBuildInProcess(makeBuildContext(spec, join(suite.root, 'in-process')), {
      concurrency: 2,
    });
    const jobs = await pipelineJobs();
    const workers = await Promise.all(
      [0, 1].map(() =>
        startBuildWorker({ ...DEFAULT_WORKER_SETTINGS, redis: suite.redis.url, jobs, log: () => undefined }),
      ),
    );
    try {
      const ctx = makeBuildContext(spec, join(suite.root, 'fleet'), { partitionRecords: 3 });
      const manifest = await runBuildOnQueue(ctx, { redis: suite.redis.url, pollMs: 50 });
      assert.ok(manifest);
      assert.ok(
        Object.keys(ref.components.find((c) => c.name === 'b')?.counts.dropped ?? {}).includes(
          'near-duplicate-text',
        ),
      );
      assert.deepEqual(publishedHashes(ctx.out), publishedHashes(join(suite.root, 'in-process')));
    } finally {
      await Promise.all(workers.map((w) => w.close()));
    }
  });
});
