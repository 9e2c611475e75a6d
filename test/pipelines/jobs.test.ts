// Job-level contracts the executors rely on: a job told to stop stops without marking itself done.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { shippedSpecPath } from '../../manifests/demo-overrides.ts';
import { loadSpec } from '../../manifests/spec.ts';
import { makeBuildContext, writeBuildContext } from '../../pipelines/context.ts';
import { isJobDone, runJobOnce } from '../../pipelines/jobs/index.ts';
import { shutdownRecordProcessing } from '../../pipelines/process-adapter.ts';
import { demoDataDir } from '../helpers/demo-data.ts';

let tmp = '';
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'mixforge-jobs-'));
});
after(async () => {
  await shutdownRecordProcessing();
  await rm(tmp, { recursive: true, force: true });
});

describe('jobs', () => {
  it('an aborted ingest stops with the abort reason and leaves no done marker; rerun completes it', async () => {
    const data = await demoDataDir();
    const spec = await loadSpec(shippedSpecPath('demo'), { env: { MIXFORGE_DEMO_DATA: data } });
    const ctx = makeBuildContext(spec, join(tmp, 'out'));
    await writeBuildContext(ctx);
    await runJobOnce(ctx, 'plan', 0);
    const stop = new AbortController();
    stop.abort(new Error('time limit'));
    await assert.rejects(runJobOnce(ctx, 'ingest', 0, stop.signal), /time limit/);
    assert.equal(await isJobDone(ctx, 'ingest', 0), false);
    const again = await runJobOnce(ctx, 'ingest', 0);
    assert.equal(again.ran, true);
    assert.equal(await isJobDone(ctx, 'ingest', 0), true);
  });
});
