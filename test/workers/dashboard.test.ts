// The bull-board dashboard over the step queues, loaded in headless Chromium: it lists the mixforge queues and shows
// the jobs of a finished build by their deterministic ids.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { submitBuild } from '../../workers/control.ts';
import { startDashboard } from '../../workers/dashboard.ts';
import { followBuild } from '../../workers/executor-bullmq.ts';
import { STEPS } from '../../workers/queues.ts';
import { DEFAULT_WORKER_SETTINGS, startBuildWorker } from '../../workers/worker.ts';
import { launchChromium } from '../helpers/chromium.ts';
import { countingBuild, countingContext, writeCountingContext } from './counting-build.ts';
import { usePrivateQueues } from './private-queues.ts';

describe('mixforge dashboard (bull-board in headless Chromium)', () => {
  const q = usePrivateQueues({ tmpPrefix: 'mixforge-dash-' });

  it('lists every step queue and the completed jobs of a build', async () => {
    const params = { partitions: 2, recordsPerPartition: 10, shardRows: 20, delayMs: 0 };
    const ctx = countingContext('dash-build', join(q.root, 'out'));
    await writeCountingContext(ctx);
    const w = await startBuildWorker({
      ...DEFAULT_WORKER_SETTINGS,
      redis: q.redis.url,
      jobs: countingBuild(params),
      log: () => undefined,
    });
    try {
      await submitBuild(q.queues, {
        buildId: ctx.buildId,
        out: ctx.out,
        retry: { attempts: 2, backoffMs: 50 },
      });
      await followBuild(q.queues, ctx.buildId, { pollMs: 50 });
    } finally {
      await w.close();
    }

    // Closed in the test, before the suite's hooks stop Redis under it.
    const dashboard = await startDashboard({ redis: q.redis.url, port: 0 });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(dashboard.url);
      // The overview lists the queues once the SPA has fetched them from the API.
      for (const step of STEPS)
        await page.getByText(`mixforge-${step}`, { exact: true }).first().waitFor({ timeout: 15_000 });
      // The ingest queue's completed tab shows both jobs by their deterministic ids.
      await page.goto(`${dashboard.url}queue/mixforge-ingest?status=completed`);
      for (const n of [0, 1])
        await page.getByText(`${ctx.buildId}.ingest.${n}`).first().waitFor({ timeout: 15_000 });
      const body = (await page.locator('body').textContent()) ?? '';
      assert.match(body, /dash-build\.ingest\.0/);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      await dashboard.close();
    }
  });
});
