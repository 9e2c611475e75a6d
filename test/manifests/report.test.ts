// report.html opens in a real browser and every chart draws.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { shippedSpecPath } from '../../demo/spec-overrides.ts';
import { readManifest } from '../../manifests/manifest.ts';
import { reportCharts, writeReport } from '../../manifests/report.ts';
import { loadSpec } from '../../manifests/spec.ts';
import { makeBuildContext } from '../../pipelines/context.ts';
import { runBuildInProcess } from '../../pipelines/executor-inprocess.ts';
import { launchChromium } from '../helpers/chromium.ts';
import { demoDataDir } from '../helpers/demo-data.ts';

let tmp = '';
let out = '';
before(async () => {
  const data = await demoDataDir();
  tmp = await mkdtemp(join(tmpdir(), 'mixforge-report-'));
  out = join(tmp, 'out');
  const spec = await loadSpec(shippedSpecPath('demo'), { env: { MIXFORGE_DEMO_DATA: data } });
  await runBuildInProcess(makeBuildContext(spec, out));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('report', () => {
  it('has every chart the issue asks for, with the build figures', async () => {
    const m = await readManifest(out);
    const charts = reportCharts(m);
    assert.deepEqual(
      charts.map((c) => c.id),
      ['composition', 'drops', 'sides', 'aspect', 'turns', 'chars', 'placement'],
    );
    const composition = charts[0].config as { data: { datasets: { label: string; data: number[] }[] } };
    const built = composition.data.datasets.find((d) => d.label === 'built');
    assert.deepEqual(
      built?.data,
      m.components.map((c) => c.counts.emitted),
    );
    const planned = composition.data.datasets.find((d) => d.label === 'planned');
    const recapIndex = m.components.findIndex((c) => c.name === 'recap');
    assert.equal(planned?.data[recapIndex], 20, 'recap planned = take count');
  });

  it('renders every chart in headless Chromium', async () => {
    const uri = await writeReport(out);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(pathToFileURL(uri).href);
      // Page code as strings: it runs in the browser, where the DOM exists (this project type-checks for Node).
      await page.waitForFunction(
        'window.mixforgeCharts !== undefined && window.mixforgeCharts.drawn === window.mixforgeCharts.expected',
        undefined,
        { timeout: 20_000 },
      );
      // Every canvas has drawn pixels (not blank): count non-transparent pixels.
      const inked = (await page.evaluate(`[...document.querySelectorAll('canvas')].map((c) => {
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
        return n;
      })`)) as number[];
      assert.equal(inked.length, 7);
      for (const [i, n] of inked.entries()) assert.ok(n > 500, `chart ${i} drew (${n} inked pixels)`);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });
});
