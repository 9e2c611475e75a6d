// `mixforge report`: a self-contained report.html a data engineer signs off on. Build metadata and inputs, per
// component and per sub-source tables with shares of the mixture, take asked/available/kept, Chart.js charts
// (inlined, so it opens offline; they fill the page width), sample previews and quarantine examples.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { joinUri, storageFor } from '../core/storage/index.ts';
import { type Manifest, manifestRoot, readManifest } from './manifest.ts';
import type { NearDupExample } from './near-dup-summary.ts';
import { gatherEvidence, type ReportEvidence } from './report-evidence.ts';
import { nearDupSection, readNearDupExamples } from './report-near-dup.ts';
import { takeSize } from './spec-schema.ts';
import { ASPECT_BINS, CHAR_BINS, SIDE_BINS, TURN_BINS } from './stats.ts';
import { TOKEN_BINS, type TokenHistogram } from './token-counts.ts';
import { verifyAndRecord } from './verify-record.ts';

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
      // Sized by its container (the page width, a fixed height), so wide mixtures get room.
      responsive: true,
      maintainAspectRatio: false,
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
      id: 'share',
      title: 'Share of the mixture by component (built rows)',
      config: {
        type: 'doughnut',
        data: {
          labels: names,
          datasets: [{ label: 'rows', data: m.components.map((c) => c.counts.emitted) }],
        },
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          plugins: { legend: { position: 'right' } },
        },
      },
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

/** One stacked histogram per counted resolution: training tokens per sample, by component. */
export function tokenCharts(histograms: readonly TokenHistogram[] = []): Chart[] {
  return histograms.map((h) => ({
    id: `tokens-r${h.resolution}`,
    title: `Training tokens per sample at ${h.resolution}² (conv_qwen_2 + image tokens), by component`,
    config: {
      type: 'bar',
      data: {
        labels: binLabels(TOKEN_BINS),
        datasets: h.components.map((c) => ({ label: c.name, data: c.bins })),
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } },
      },
    },
  }));
}

function tokenSection(histograms: readonly TokenHistogram[] = []): string {
  if (!histograms.length) return '';
  const rows = histograms.flatMap((h) =>
    h.components.map(
      (c) =>
        `<tr><td>${h.resolution}²</td><td>${esc(c.name)}</td><td>${c.samples}</td><td>${c.mean.toFixed(0)}</td><td>${c.max}</td></tr>`,
    ),
  );
  return `<section><h2>Training tokens (mixforge tokens)</h2>
<table class="tokens"><tr><th>resolution</th><th>component</th><th>samples</th><th>mean tokens</th><th>max tokens</th></tr>
${rows.join('\n')}</table></section>`;
}

async function chartJsSource(): Promise<string> {
  // The package's exports hide dist/; resolve its entry point and take the UMD build beside it.
  const require = createRequire(import.meta.url);
  return readFile(join(dirname(require.resolve('chart.js')), 'chart.umd.min.js'), 'utf8');
}

const pct = (part: number, whole: number) => (whole > 0 ? `${((100 * part) / whole).toFixed(1)} %` : '–');
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
/** Numbers and "12.5 %" / "3.1 MB" cells align right. */
const cell = (c: string | number) =>
  typeof c === 'number' || /^[\d.]+ (%|MB)$/.test(c) ? `<td class="n">${c}</td>` : `<td>${c}</td>`;
const row = (cells: (string | number)[], cls = '') =>
  `<tr${cls ? ` class="${cls}"` : ''}>${cells.map(cell).join('')}</tr>`;
const head = (cells: string[]) => `<tr>${cells.map((c) => `<th>${c}</th>`).join('')}</tr>`;

function duration(seconds: number): string {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min ${s % 60} s` : `${seconds.toFixed(1)} s`;
}

function buildSection(m: Manifest, e: ReportEvidence): string {
  const b = e.build;
  const v = b.verify;
  const verify = !v
    ? '<span class="bad">not verified</span>: run <code>mixforge verify</code> on this output (or <code>mixforge report --verify</code>)'
    : v.problems.length
      ? `<span class="bad">FAILED: ${v.problems.length} problem(s)</span> at ${esc(v.checkedAt)}<ul>${v.problems
          .map((p) => `<li>${esc(p)}</li>`)
          .join('')}</ul>`
      : `<span class="ok">ok</span>: every shard re-hashed and re-counted by <code>mixforge verify</code> at ${esc(v.checkedAt)}`;
  const items: [string, string][] = [
    [
      'built',
      b.started ? `${esc(b.started)} → ${esc(b.finished ?? '?')}` : 'unknown (no build log in _build/done)',
    ],
    ['duration', b.seconds !== undefined ? duration(b.seconds) : 'unknown'],
    ['mixforge', esc(b.mixforgeVersion)],
    ['seed · spec', `${m.seed} · ${m.specHash.slice(0, 12)}`],
    [
      'output',
      `${m.totals.rows} rows in ${m.totals.shards} shards, ${mb(m.totals.bytes)}; ${m.totals.quarantined} quarantined`,
    ],
    ['verify', verify],
  ];
  const inputs = m.inputs
    .map((i) => row([esc(i.component), `<code>${esc(i.uri)}</code>`, i.size, mb(i.size)]))
    .join('\n');
  const inputBytes = m.inputs.reduce((a, i) => a + i.size, 0);
  return `<section id="build"><h2>Build</h2>
<table class="meta">${items.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join('\n')}</table>
<h3>Input files (${m.inputs.length}, ${mb(inputBytes)})</h3>
<table id="inputs">${head(['component', 'file', 'bytes', 'size'])}
${inputs}
</table></section>`;
}

function componentSection(m: Manifest): string {
  const total = m.totals.rows;
  const rows = m.components
    .map((c) =>
      row([
        esc(c.name),
        esc(c.format),
        c.counts.in,
        c.counts.kept,
        c.counts.emitted,
        pct(c.counts.emitted, total),
        esc(
          Object.entries(c.counts.dropped)
            .map(([k, v]) => `${k} ${v}`)
            .join(', '),
        ),
      ]),
    )
    .join('\n');
  // The manifest carries take counts only where take.count asked for more than the component had.
  const takes = m.components.flatMap((c) => (c.take ? [{ name: c.name, ...c.take }] : []));
  const takeTable = takes.length
    ? `<h3>Take: asked / available / kept</h3>
<table id="take">${head(['component', 'asked', 'available', 'kept', ''])}
${takes
  .map((t) =>
    t.asked > t.available
      ? row(
          [esc(t.name), t.asked, t.available, t.kept, `⚠ asked ${t.asked - t.available} more than available`],
          'warn',
        )
      : row([esc(t.name), t.asked, t.available, t.kept, '']),
  )
  .join('\n')}
</table>`
    : '';
  return `<section id="components"><h2>Components</h2>
<table id="component-table">${head(['component', 'format', 'in', 'kept', 'rows', 'share of mixture', 'dropped'])}
${rows}
</table>
${takeTable}</section>`;
}

function sourceSection(m: Manifest): string {
  const total = m.totals.rows;
  const rows = m.components.flatMap((c) => {
    const per = m.stats.bySource[c.name] ?? {};
    const inComponent = Object.values(per).reduce((a, b) => a + b, 0);
    return Object.entries(per)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([source, n]) => row([esc(c.name), esc(source), n, pct(n, inComponent), pct(n, total)]));
  });
  return `<section id="sources"><h2>Sub-sources</h2>
<table id="source-table">${head(['component', 'sub-source', 'rows', 'share of component', 'share of mixture'])}
${rows.join('\n')}
</table></section>`;
}

function sampleSection(e: ReportEvidence): string {
  const cards = e.samples.map(
    (s) => `<div class="sample" data-component="${esc(s.component)}" data-source="${esc(s.source)}">
<div class="where"><b>${esc(s.component)}</b> · ${esc(s.source)} · <code>${esc(s.id)}</code><br><small>${esc(s.origin)}</small></div>
<div class="thumbs">${s.thumbnails.map((t) => `<img class="thumb" alt="image of ${esc(s.id)}" src="${t}">`).join('')}${
      s.images > s.thumbnails.length ? `<span>+${s.images - s.thumbnails.length} more</span>` : ''
    }${s.images === 0 ? '<span class="none">text only</span>' : ''}</div>
<div class="conv">${s.conversation
      .map(
        (t) =>
          `<div class="turn ${esc(t.from)}"><span class="role">${esc(t.from)}</span><p>${esc(t.value)}</p></div>`,
      )
      .join('')}</div></div>`,
  );
  return `<section id="samples"><h2>Sample previews</h2>
<p>The first rows of each component and sub-source in shard order (key order, a keyed random sample).</p>
<div class="samples">${cards.join('\n')}</div></section>`;
}

function quarantineSection(m: Manifest, e: ReportEvidence): string {
  if (e.quarantine.length === 0)
    return '<section id="quarantine"><h2>Quarantine examples</h2><p>Nothing was quarantined.</p></section>';
  return `<section id="quarantine"><h2>Quarantine examples</h2>
<p>${m.totals.quarantined} records in <code>${esc(m.quarantine.path)}</code>; a few per component and reason:</p>
<table id="quarantine-table">${head(['component', 'reason', 'origin', 'message'])}
${e.quarantine.map((q) => row([esc(q.component), esc(q.reason), `<code>${esc(q.origin)}</code>`, esc(q.message)])).join('\n')}
</table></section>`;
}

const STYLE = `body{font:14px system-ui,sans-serif;margin:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
td.n{text-align:right}
tr.warn td{background:#fff3cd}.bad{color:#b00020;font-weight:bold}.ok{color:#1b7f3b;font-weight:bold}
.chart{position:relative;width:100%;height:320px}
.samples{display:grid;grid-template-columns:repeat(auto-fill,minmax(26em,1fr));gap:1em}
.sample{border:1px solid #ccc;border-radius:6px;padding:.6em}.thumbs{margin:.4em 0}.thumb{max-width:192px;max-height:192px;margin-right:.4em;border:1px solid #ddd}
.turn{margin:.3em 0}.turn .role{font-weight:bold;font-size:12px;color:#555}.turn p{margin:.1em 0;white-space:pre-wrap}
.turn.gpt p{background:#f3f6fb;padding:.3em}
.pairs{display:grid;grid-template-columns:repeat(auto-fill,minmax(20em,1fr));gap:1em}.pair{border:1px solid #ccc;border-radius:6px;padding:.5em}
.pair figure{display:inline-block;margin:0 .5em 0 0;vertical-align:top}.pair figcaption{font-size:12px}code{font-size:12px;word-break:break-all}`;

export async function renderReport(
  m: Manifest,
  evidence: ReportEvidence = {
    samples: [],
    quarantine: [],
    build: { mixforgeVersion: '?' },
  },
  nearDupExamples: readonly NearDupExample[] = [],
): Promise<string> {
  const charts = [...reportCharts(m), ...tokenCharts(evidence.tokens)];
  const canvases = charts
    .map(
      (c) =>
        `<section><h2>${esc(c.title)}</h2><div class="chart"><canvas id="${c.id}"></canvas></div></section>`,
    )
    .join('\n');
  // JSON inside <script>: escape "<" so a source name can never close the script element.
  const data = JSON.stringify(charts.map((c) => ({ id: c.id, config: c.config }))).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mixforge report: ${esc(m.name)}</title>
<style>${STYLE}</style>
</head><body>
<h1>${esc(m.name)}</h1>
<p>seed ${m.seed} · spec ${m.specHash.slice(0, 12)} · ${m.totals.rows} rows in ${m.totals.shards} shards · ${mb(m.totals.bytes)} · ${m.totals.quarantined} quarantined</p>
${buildSection(m, evidence)}
${componentSection(m)}
${nearDupSection(m, nearDupExamples)}
${sourceSection(m)}
${tokenSection(evidence.tokens)}
${canvases}
${sampleSection(evidence)}
${quarantineSection(m, evidence)}
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

/**
 * Writes `report.html` next to the manifest; returns its URI. It states the last `mixforge verify` of this manifest
 * (`_build/verify.json`); `verify: true` runs verify first (it re-reads every shard: on S3, the whole build).
 */
export async function writeReport(out: string, opts: { verify?: boolean } = {}): Promise<string> {
  if (opts.verify) await verifyAndRecord(out);
  const m = await readManifest(out);
  const uri = joinUri(manifestRoot(out), 'report.html');
  await storageFor(uri).writeAtomic(
    uri,
    await renderReport(m, await gatherEvidence(m, out), await readNearDupExamples(out)),
  );
  return uri;
}
