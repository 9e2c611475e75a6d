import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { renderReport } from '../../manifests/report.ts';
import { gatherEvidence } from '../../manifests/report-evidence.ts';
import { binOf } from '../../manifests/stats.ts';
import { readTokenCounts, TOKEN_BINS, tokenHistograms } from '../../manifests/token-counts.ts';
import { writeTokenCounts } from '../../train-bridge/loader/token-counts.ts';
import { writeFixtureMixture } from '../train-bridge/loader/fixtures.ts';

describe('token-length histograms in the report', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mixforge-token-report-'));
    await writeFixtureMixture(dir, {
      shards: [30, 20],
      imageCount: (_, i) => i % 3,
      imageSize: { width: 8, height: 8 },
    });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('are absent until mixforge tokens ran, then count every sample per component and bin', async () => {
    const manifest = join(dir, 'manifest.json');
    assert.deepEqual(await tokenHistograms(dir), []);
    await writeTokenCounts(manifest, { resolution: 1024 });
    const [h] = await tokenHistograms(dir);
    assert.equal(h.resolution, 1024);
    const counts = (await readTokenCounts(manifest, 1024)).flatMap((s) => [...s]);
    const want = TOKEN_BINS.map(() => 0);
    for (const n of counts) want[binOf(TOKEN_BINS, n)]++;
    const fixture = h.components.find((c) => c.name === 'fixture');
    assert.ok(fixture, `components: ${h.components.map((c) => c.name)}`);
    assert.deepEqual(fixture.bins, want);
    assert.equal(fixture.samples, 50);
    assert.equal(fixture.max, Math.max(...counts));
    // Samples with two images at 1024² (256 tokens each) pass 512 tokens.
    assert.ok(fixture.max > 512);
  });

  it('appear in report.html as a table and a chart per resolution', async () => {
    const { readManifest } = await import('../../manifests/manifest.ts');
    const m = await readManifest(dir);
    const html = await renderReport(m, await gatherEvidence(m, dir));
    assert.match(html, /<h2>Training tokens \(mixforge tokens\)<\/h2>/);
    assert.match(html, /<td>1024²<\/td><td>fixture<\/td><td>50<\/td>/);
    assert.match(html, /<canvas id="tokens-r1024">/);
  });
});
