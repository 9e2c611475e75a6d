// The bull-board dashboard over the step queues, loaded in headless Chromium: it lists the mixforge queues and shows
// the jobs of a finished build by their deterministic ids.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { submitBuild } from '../../workers/control.ts';
import { type Dashboard, startDashboard } from '../../workers/dashboard.ts';
import { followBuild } from '../../workers/executor-bullmq.ts';
import { STEPS } from '../../workers/queues.ts';
import { BuildQueues } from '../../workers/status.ts';
import { DEFAULT_WORKER_SETTINGS, startBuildWorker } from '../../workers/worker.ts';
import { launchChromium } from '../helpers/chromium.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { countingBuild, countingContext, writeCountingContext } from './counting-build.ts';

describe('mixforge dashboard (bull-board in headless Chromium)', () => {
  let redis: TestRedis;
  let client: Redis;
  let queues: BuildQueues;
  let dashboard: Dashboard;
  let root: string;

  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url, { maxRetriesPerRequest: null });
    client.on('error', () => undefined);
    queues = new BuildQueues(client);
    root = await mkdtemp(join(tmpdir(), 'mixforge-dash-'));
    dashboard = await startDashboard({ redis: redis.url, port: 0 });
  });
  after(async () => {
    await dashboard.close();
    await queues.close();
    client.disconnect();
    await redis.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('lists every step queue and the completed jobs of a build', async () => {
    const params = { partitions: 2, recordsPerPartition: 10, shardRows: 20, delayMs: 0 };
    const ctx = countingContext('dash-build', join(root, 'out'));
    await writeCountingContext(ctx);
    const w = await startBuildWorker({
      ...DEFAULT_WORKER_SETTINGS,
      redis: redis.url,
      jobs: countingBuild(params),
      log: () => undefined,
    });
    try {
      await submitBuild(queues, {
        buildId: ctx.buildId,
        out: ctx.out,
        retry: { attempts: 2, backoffMs: 50 },
      });
      await followBuild(queues, ctx.buildId, { pollMs: 50 });
    } finally {
      await w.close();
    }

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
    }
  });
});
