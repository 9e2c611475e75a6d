// Every shipped mixture spec plans and builds against the demo data (inputs overridden to its layout).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { demoOverrides, SHIPPED_SPECS, shippedSpecPath } from '../../demo/spec-overrides.ts';
import { verifyBuild } from '../../manifests/manifest.ts';
import { loadSpec } from '../../manifests/spec.ts';
import { makeBuildContext } from '../../pipelines/context.ts';
import { runBuildInProcess } from '../../pipelines/executor-inprocess.ts';
import { planBuild, sampleImageBytes, summarisePlan } from '../../pipelines/jobs/plan.ts';
import { demoDataDir } from '../helpers/demo-data.ts';

let data = '';
let tmp = '';
before(async () => {
  data = await demoDataDir();
  tmp = await mkdtemp(join(tmpdir(), 'mixforge-specs-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('shipped specs', () => {
  for (const name of SHIPPED_SPECS) {
    it(`${name}: plans and builds against the demo data`, async () => {
      const o = demoOverrides(name, data);
      // Keep shards small so every spec writes several.
      const spec = await loadSpec(shippedSpecPath(name), {
        env: o.env,
        set: [...o.set, 'output.shard_rows=25'],
      });
      const out = join(tmp, name);
      const ctx = makeBuildContext(spec, out);
      const plan = await planBuild(ctx);
      const summary = summarisePlan(spec, plan, await sampleImageBytes(spec, plan));
      for (const c of summary.components)
        assert.ok(c.files > 0 && c.records > 0, `${name}/${c.name} planned records`);
      const manifest = await runBuildInProcess(ctx);
      assert.deepEqual(await verifyBuild(out), []);
      assert.ok(manifest.totals.rows > 0, 'rows built');
      for (const c of manifest.components) assert.ok(c.counts.in > 0, `${name}/${c.name} read records`);
      // The estimate counts the images of json sources too (the demo's was 2.2× low before it did: 1.12× now). It
      // is taken before filters, dedup and quarantine, so specs that drop much come out high (up to 2.2× here).
      const ratio = summary.estimatedBytes / manifest.totals.bytes;
      const said = `${name}: plan estimate ${summary.estimatedBytes} B, built ${manifest.totals.bytes} B`;
      assert.ok(ratio > 0.67 && ratio < 3, said);
      if (name === 'demo') assert.ok(ratio > 0.8 && ratio < 1.5, said);
    });
  }
});
