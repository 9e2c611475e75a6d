// report.html's near-duplicate and contamination section: per component, the samples near_dedup and decontaminate
// dropped (from the manifest's counts), and a few dropped/kept pairs with thumbnails side by side (from
// `_build/near-dup.json`, which the near-dedup stage writes and cleanup keeps).
import { joinUri, storageFor } from '../core/storage/index.ts';
import { type Manifest, manifestRoot } from './manifest.ts';
import type { NearDupExample, NearDupSummary } from './near-dup-summary.ts';

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The example pairs of a build's near-dedup stage; none when the build has no near-dup.json. */
export async function readNearDupExamples(out: string): Promise<NearDupExample[]> {
  const uri = joinUri(manifestRoot(out), '_build', 'near-dup.json');
  const storage = storageFor(uri);
  if (!(await storage.stat(uri))) return [];
  const summary = JSON.parse(Buffer.from(await storage.readAll(uri)).toString('utf8')) as NearDupSummary;
  return summary.examples ?? [];
}

const isOverlapDrop = (reason: string) =>
  reason.startsWith('near-duplicate-') || reason.startsWith('contaminated:');

export function nearDupSection(m: Manifest, examples: readonly NearDupExample[]): string {
  const reasons = [
    ...new Set(m.components.flatMap((c) => Object.keys(c.counts.dropped).filter(isOverlapDrop))),
  ].sort();
  if (reasons.length === 0 && examples.length === 0) return '';
  const rows = m.components.map(
    (c) =>
      `<tr><td>${esc(c.name)}</td>${reasons.map((r) => `<td class="n">${c.counts.dropped[r] ?? 0}</td>`).join('')}</tr>`,
  );
  const side = (s: NearDupExample['dropped'], label: string) =>
    `<figure>${s.thumbnail ? `<img class="thumb" alt="${label} ${esc(s.id)}" src="${s.thumbnail}">` : '<span class="none">no image</span>'}<figcaption>${label}: <code>${esc(s.id)}</code> (${esc(s.component)})</figcaption></figure>`;
  const pairs = examples.map(
    (
      e,
    ) => `<div class="pair" data-reason="${esc(e.reason)}">${side(e.kept, 'kept')}${side(e.dropped, 'dropped')}
<p>${esc(e.reason)} · image distance ${e.distance} bits · text Jaccard ≈ ${e.jaccard}</p></div>`,
  );
  return `<section id="near-duplicates"><h2>Near-duplicates and contamination</h2>
<table id="near-dup-table"><tr><th>component</th>${reasons.map((r) => `<th>${esc(r)}</th>`).join('')}</tr>
${rows.join('\n')}
</table>
${pairs.length ? `<p>Example pairs (the kept sample beside the dropped one):</p>\n<div class="pairs">${pairs.join('\n')}</div>` : ''}
</section>`;
}
