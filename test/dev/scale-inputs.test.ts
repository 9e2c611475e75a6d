// The scale benchmark's inputs: every image a distinct picture, and the counts the bench checks builds against
// (records per component, duplicates, text-only records) are what a build of them reports.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { componentSizes, generateScaleInputs, scaleImage, scaleImagePool } from '../../dev/scale-inputs.ts';
import { verifyBuild } from '../../manifests/manifest.ts';
import { loadSpec } from '../../manifests/spec.ts';
import { makeBuildContext } from '../../pipelines/context.ts';
import { runBuildInProcess } from '../../pipelines/executor-inprocess.ts';

describe('scale inputs', () => {
  it('re-quantised variants of one base picture decode to different pixels of the same size', async () => {
    const pool = await scaleImagePool();
    const decoded = await Promise.all(
      [7, 7 + pool.length, 7 + 33 * pool.length].map((i) =>
        sharp(scaleImage(pool, i)).raw().toBuffer({ resolveWithObject: true }),
      ),
    );
    for (const d of decoded.slice(1)) {
      assert.equal(d.info.width, decoded[0].info.width);
      assert.equal(d.info.height, decoded[0].info.height);
      assert.notDeepEqual(d.data, decoded[0].data);
    }
    assert.notDeepEqual(decoded[1].data, decoded[2].data);
  });

  it('a build of them counts what was generated', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mixforge-scale-inputs-'));
    try {
      const n = 400;
      const inputs = await generateScaleInputs(join(dir, 'in'), n);
      const sizes = componentSizes(n);
      assert.equal(sizes.recap + sizes.extra + sizes.instruct + sizes.vqa, n);
      const spec = await loadSpec(inputs.spec, { env: {} });
      const m = await runBuildInProcess(makeBuildContext(spec, join(dir, 'out')));
      assert.deepEqual(await verifyBuild(join(dir, 'out')), []);
      const counts = Object.fromEntries(m.components.map((c) => [c.name, c.counts]));
      for (const [name, records] of Object.entries(inputs.expected.in))
        assert.equal(counts[name].in, records);
      const dropped = (reason: string) =>
        m.components.reduce((a, c) => a + (c.counts.dropped[reason] ?? 0), 0);
      assert.equal(dropped('dedup'), inputs.expected.duplicates);
      assert.ok(inputs.expected.duplicates > 0);
      assert.equal(dropped('filter:image_only'), inputs.expected.textOnly);
      assert.equal(counts.instruct.kept, Math.floor(sizes.instruct * 0.8));
      assert.ok(counts.recap_extra.dropped['not-taken'] > 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
