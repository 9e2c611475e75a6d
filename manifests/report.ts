// `mixforge report`: a self-contained report.html drawn with Chart.js (inlined, so it opens offline): composition
// planned vs built, drop reasons, image size and aspect histograms, conversation lengths, <image> placement.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { joinUri, storageFor } from '../core/storage/index.ts';
import { type Manifest, manifestRoot, readManifest } from './manifest.ts';
import { takeSize } from './spec-schema.ts';
import { ASPECT_BINS, CHAR_BINS, SIDE_BINS, TURN_BINS } from './stats.ts';

interface Chart {
  id: string;
  title: string;
  config: unknown;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const binLabels = (bins: number[]) =>
  bins.map((b, i) => (i + 1 < bins.length ? `${b}–${bins[i + 1]}` : `≥${b}`));

/** Rows a component was meant to contribute: its take target (or everything read) × repeat. */
export function plannedRows(c: Manifest['components'][number], spec: Manifest['spec']): number {
  const sc = spec.components.find((x) => x.name === c.name);
  return takeSize(sc?.take, c.counts.in) * (sc?.repeat ?? 1);
}

export function reportCharts(m: Manifest): Chart[] {
  const names = m.components.map((c) => c.name);
  const bar = (labels: string[], datasets: { label: string; data: number[] }[], stacked = false) => ({
    type: 'bar',
    data: { labels, datasets },
    options: {
      animation: false,
      responsive: false,
      scales: { x: { stacked }, y: { stacked, beginAtZero: true } },
    },
  });
  const reasons = [...new Set(m.components.flatMap((c) => Object.keys(c.counts.dropped)))].sort();
  const charts: Chart[] = [
    {
      id: 'composition',
      title: 'Composition by component: planned vs built rows',
      config: bar(names, [
        { label: 'planned', data: m.components.map((c) => plannedRows(c, m.spec)) },
        { label: 'built', data: m.components.map((c) => c.counts.emitted) },
      ]),
    },
    {
      id: 'drops',
      title: 'Dropped records by reason',
      config: bar(
        names,
        reasons.map((r) => ({ label: r, data: m.components.map((c) => c.counts.dropped[r] ?? 0) })),
        true,
      ),
    },
    {
      id: 'sides',
      title: 'Image long side (px)',
      config: bar(binLabels(SIDE_BINS), [{ label: 'images', data: m.stats.longSide }]),
    },
    {
      id: 'aspect',
      title: 'Image aspect ratio (w/h)',
      config: bar(binLabels(ASPECT_BINS), [{ label: 'images', data: m.stats.aspect }]),
    },
    {
      id: 'turns',
      title: 'Conversation turns',
      config: bar(binLabels(TURN_BINS), [{ label: 'samples', data: m.stats.turns }]),
    },
    {
      id: 'chars',
      title: 'Conversation characters',
      config: bar(binLabels(CHAR_BINS), [{ label: 'samples', data: m.stats.chars }]),
    },
  ];
  const triplets = m.components.filter((c) => c.transform === 'triplet').map((c) => c.name);
  if (triplets.length) {
    charts.push({
      id: 'placement',
      title: '<image> placement in triplet components',
      config: bar(
        triplets,
        [
          { label: 'before question', data: triplets.map((t) => m.stats.placement[t]?.before ?? 0) },
          { label: 'after question', data: triplets.map((t) => m.stats.placement[t]?.after ?? 0) },
        ],
        true,
      ),
    });
  }
  return charts;
}

async function chartJsSource(): Promise<string> {
  // The package's exports hide dist/; resolve its entry point and take the UMD build beside it.
  const require = createRequire(import.meta.url);
  return readFile(join(dirname(require.resolve('chart.js')), 'chart.umd.min.js'), 'utf8');
}

export async function renderReport(m: Manifest): Promise<string> {
  const charts = reportCharts(m);
  const table = m.components
    .map(
      (c) =>
        `<tr><td>${esc(c.name)}</td><td>${esc(c.format)}</td><td>${c.counts.in}</td><td>${c.counts.kept}</td><td>${c.counts.emitted}</td><td>${esc(
          Object.entries(c.counts.dropped)
            .map(([k, v]) => `${k} ${v}`)
            .join(', '),
        )}</td></tr>`,
    )
    .join('\n');
  const canvases = charts
    .map(
      (c) =>
        `<section><h2>${esc(c.title)}</h2><canvas id="${c.id}" width="720" height="300"></canvas></section>`,
    )
    .join('\n');
  // JSON inside <script>: escape "<" so a source name can never close the script element.
  const data = JSON.stringify(charts.map((c) => ({ id: c.id, config: c.config }))).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mixforge report: ${esc(m.name)}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}td:first-child,td:nth-child(2){text-align:left}</style>
</head><body>
<h1>${esc(m.name)}</h1>
<p>seed ${m.seed} · spec ${m.specHash.slice(0, 12)} · ${m.totals.rows} rows in ${m.totals.shards} shards · ${(m.totals.bytes / 1e6).toFixed(1)} MB · ${m.totals.quarantined} quarantined</p>
<table><tr><th>component</th><th>format</th><th>in</th><th>kept</th><th>rows</th><th>dropped</th></tr>
${table}
</table>
${canvases}
<script>${await chartJsSource()}</script>
<script>
window.mixforgeCharts = { expected: ${charts.length}, drawn: 0 };
for (const c of ${data}) {
  const cfg = c.config;
  cfg.plugins = [{ id: 'drawn', afterRender() { if (!this.done) { this.done = true; window.mixforgeCharts.drawn++; } } }];
  new Chart(document.getElementById(c.id), cfg);
}
</script>
</body></html>
`;
}

/** Writes `report.html` next to the manifest; returns its URI. */
export async function writeReport(out: string): Promise<string> {
  const m = await readManifest(out);
  const uri = joinUri(manifestRoot(out), 'report.html');
  await storageFor(uri).writeAtomic(uri, await renderReport(m));
  return uri;
}
