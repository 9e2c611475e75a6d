// report.html opens in a real browser: every chart draws across the page width, and the sections a data engineer
// signs off on are there with the build's figures: build metadata (dates from the done markers, version, inputs,
// verify), components with their share, sub-sources, sample previews whose thumbnails decode, quarantine examples,
// and the take table (with a warning row) when the manifest carries take counts.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import type { Page } from 'playwright-core';
import { shippedSpecPath } from '../../demo/spec-overrides.ts';
import { type Manifest, readManifest } from '../../manifests/manifest.ts';
import { renderReport, reportCharts, writeReport } from '../../manifests/report.ts';
import { SAMPLES_PER_SOURCE } from '../../manifests/report-evidence.ts';
import { loadSpec } from '../../manifests/spec.ts';
import { readVerifyRecord } from '../../manifests/verify-record.ts';
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

/** Cell texts of a table's body rows (header row excluded). */
async function tableRows(page: Page, id: string): Promise<string[][]> {
  return (await page.evaluate(
    `[...document.querySelectorAll('#${id} tr')].slice(1).map((tr) => [...tr.children].map((td) => td.textContent.trim()))`,
  )) as string[][];
}

describe('report', () => {
  it('has every chart the issue asks for, with the build figures', async () => {
    const m = await readManifest(out);
    const charts = reportCharts(m);
    assert.deepEqual(
      charts.map((c) => c.id),
      ['composition', 'share', 'drops', 'sides', 'aspect', 'turns', 'chars', 'placement'],
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

  it('renders in headless Chromium: charts at page width, metadata, tables, previews, quarantine', async () => {
    const m = await readManifest(out);
    // Never verified: the report says so (it does not re-read the shards on its own).
    assert.match(await readFile(await writeReport(out), 'utf8'), /<span class="bad">not verified<\/span>/);
    const uri = await writeReport(out, { verify: true });
    const record = JSON.parse(await readFile(join(out, '_build', 'verify.json'), 'utf8')) as {
      checkedAt: string;
      problems: string[];
    };
    assert.deepEqual(record.problems, []);
    const manifestBefore = await readFile(join(out, 'manifest.json'), 'utf8');
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(pathToFileURL(uri).href);
      // Page code as strings: it runs in the browser, where the DOM exists (this project type-checks for Node).
      await page.waitForFunction(
        'window.mixforgeCharts !== undefined && window.mixforgeCharts.drawn === window.mixforgeCharts.expected',
        undefined,
        { timeout: 20_000 },
      );
      // Every canvas has drawn pixels (not blank) and spans the page's content width.
      const canvases = (await page.evaluate(`[...document.querySelectorAll('canvas')].map((c) => {
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
        return { inked: n, width: c.getBoundingClientRect().width, page: document.body.clientWidth };
      })`)) as { inked: number; width: number; page: number }[];
      assert.equal(canvases.length, 8);
      for (const [i, c] of canvases.entries()) {
        assert.ok(c.inked > 500, `chart ${i} drew (${c.inked} inked pixels)`);
        assert.ok(c.page > 1200 && c.width >= 0.98 * c.page, `chart ${i} is ${c.width} px of ${c.page}`);
      }
      // A narrower window gives narrower charts: they follow the page, not a fixed size.
      await page.setViewportSize({ width: 900, height: 900 });
      await page.waitForFunction(`document.querySelector('canvas').getBoundingClientRect().width < 900`);

      // Build metadata: dates are the plan and finalize done markers' (the manifest holds none).
      const marker = async (name: string) =>
        JSON.parse(await readFile(join(out, '_build', 'done', `${name}-00000.json`), 'utf8')) as {
          startedAt: string;
          finishedAt: string;
        };
      const meta = Object.fromEntries(
        (await page.evaluate(
          `[...document.querySelectorAll('#build table.meta tr')].map((tr) => [tr.children[0].textContent, tr.children[1].textContent])`,
        )) as [string, string][],
      );
      assert.equal(
        meta.built,
        `${(await marker('plan')).startedAt} → ${(await marker('finalize')).finishedAt}`,
      );
      assert.match(meta.duration, /^\d+(\.\d)? s$|min/);
      const pkg = JSON.parse(await readFile('package.json', 'utf8')) as { version: string };
      assert.equal(meta.mixforge, pkg.version);
      assert.equal(
        meta.verify,
        `ok: every shard re-hashed and re-counted by mixforge verify at ${record.checkedAt}`,
      );
      assert.doesNotMatch(manifestBefore, /20\d\d-\d\d-\d\dT/);
      const inputs = await tableRows(page, 'inputs');
      assert.deepEqual(
        inputs.map((r) => [r[0], r[1], Number(r[2])]),
        m.inputs.map((i) => [i.component, i.uri, i.size]),
      );

      // Components with their share of the mixture; sub-sources with their rows.
      const components = await tableRows(page, 'component-table');
      assert.deepEqual(
        components.map((r) => [r[0], Number(r[4]), r[5]]),
        m.components.map((c) => [
          c.name,
          c.counts.emitted,
          `${((100 * c.counts.emitted) / m.totals.rows).toFixed(1)} %`,
        ]),
      );
      const sources = await tableRows(page, 'source-table');
      const expectedSources = m.components.flatMap((c) =>
        Object.entries(m.stats.bySource[c.name] ?? {})
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([s, n]) => [c.name, s, n]),
      );
      assert.ok(expectedSources.length > m.components.length, 'the demo has several sub-sources');
      assert.deepEqual(
        sources.map((r) => [r[0], r[1], Number(r[2])]),
        expectedSources,
      );

      // Sample previews: every (component, sub-source) has 1..2 cards; thumbnails decode; conversations render.
      const cards = (await page.evaluate(`[...document.querySelectorAll('.sample')].map((d) => ({
        component: d.dataset.component, source: d.dataset.source,
        thumbs: [...d.querySelectorAll('img.thumb')].map((i) => ({ ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth })),
        turns: [...d.querySelectorAll('.turn')].map((t) => t.querySelector('.role').textContent),
        text: d.querySelector('.conv').textContent,
      }))`)) as {
        component: string;
        source: string;
        thumbs: { ok: boolean; w: number }[];
        turns: string[];
        text: string;
      }[];
      for (const [component, source] of expectedSources) {
        const n = cards.filter((c) => c.component === component && c.source === source).length;
        assert.ok(n >= 1 && n <= SAMPLES_PER_SOURCE, `${component}/${source}: ${n} previews`);
      }
      const thumbs = cards.flatMap((c) => c.thumbs);
      assert.ok(thumbs.length >= 10, `${thumbs.length} thumbnails`);
      for (const t of thumbs) assert.ok(t.ok && t.w > 0 && t.w <= 192, 'thumbnail decodes');
      for (const c of cards) {
        assert.ok(
          c.turns.length >= 1 && c.turns.every((r) => r === 'human' || r === 'gpt' || r === 'system'),
        );
        assert.ok(c.text.length > 0);
      }
      assert.ok(
        cards.some((c) => c.thumbs.length === 0 && c.source === 'llava-json/text-only'),
        'a text-only sample previews without a thumbnail',
      );

      // Quarantine examples: every (component, reason) quarantined has an example with its origin.
      const quarantine = await tableRows(page, 'quarantine-table');
      for (const c of m.components)
        for (const reason of Object.keys(c.counts.dropped).filter((k) => k.startsWith('quarantine:'))) {
          const ex = quarantine.find((r) => r[0] === c.name && r[1] === reason.slice('quarantine:'.length));
          assert.ok(ex, `${c.name} ${reason} has an example`);
          assert.ok(
            m.inputs.some((i) => ex[2].startsWith(`${i.uri}#`)),
            `origin ${ex[2]}`,
          );
          assert.ok(ex[3].length > 0, 'message');
        }
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });

  it('shows take asked / available / kept when the manifest carries it, with a warning row', async () => {
    const m = await readManifest(out);
    const withTake = {
      ...m,
      components: m.components.map((c, i) => ({
        ...c,
        take: i === 0 ? { asked: 50, available: 36, kept: 36 } : { asked: 5, available: 9, kept: 5 },
      })),
    } as Manifest;
    const html = await renderReport(withTake);
    const [first, second] = m.components.map((c) => c.name);
    assert.match(
      html,
      new RegExp(
        `<tr class="warn"><td>${first}</td><td class="n">50</td><td class="n">36</td><td class="n">36</td><td>⚠ asked 14 more than available</td></tr>`,
      ),
    );
    assert.match(
      html,
      new RegExp(
        `<tr><td>${second}</td><td class="n">5</td><td class="n">9</td><td class="n">5</td><td></td></tr>`,
      ),
    );
    assert.equal((html.match(/<tr class="warn">/g) ?? []).length, 1);
    assert.doesNotMatch(await renderReport(m), /id="take"/, 'no take table without take counts');
    const failed = await renderReport(m, {
      samples: [],
      quarantine: [],
      build: {
        mixforgeVersion: '0',
        verify: { checkedAt: 'T', manifestSha256: '', problems: ['shards/shard-00000.parquet: missing'] },
      },
    });
    // A verify record of other manifest bytes (an older build in the same folder) does not count.
    const recordUri = join(out, '_build', 'verify.json');
    const record = JSON.parse(await readFile(recordUri, 'utf8')) as Record<string, unknown>;
    assert.ok(await readVerifyRecord(out), 'the record of this manifest counts');
    await writeFile(recordUri, JSON.stringify({ ...record, manifestSha256: '0'.repeat(64) }));
    assert.equal(await readVerifyRecord(out), undefined);
    assert.match(
      failed,
      /FAILED: 1 problem\(s\)<\/span> at T<ul><li>shards\/shard-00000.parquet: missing<\/li>/,
    );
  });
});
