// finalize: check every expected output exists and the counts add up, merge quarantine, write manifest.json.
// The manifest holds no timestamps: the same spec on the same inputs gives a byte-identical manifest.

import { canonicalJson } from '../../core/canonical-json.ts';
import { filesUnder } from '../../core/foreign-files.ts';
import { joinUri, storageFor } from '../../core/storage/index.ts';
import type { Manifest } from '../../manifests/manifest.ts';
import { emptyShardStats, mergeShardStats } from '../../manifests/stats.ts';
import type { BuildContext } from '../context.ts';
import { type ComponentCounts, checkBalance, emptyCounts, mergeCounts, sortedDrops } from '../counts.ts';
import { buildLayout, SHARD_FILE } from '../layout.ts';
import { defineStage } from '../stage.ts';
import { readJson } from '../storage-json.ts';
import type { PartSummary } from './ingest.ts';
import type { BuildPlan } from './plan.ts';
import type { Selection } from './select.ts';
import type { ShardResult } from './write.ts';

export async function runFinalize(ctx: BuildContext): Promise<Manifest> {
  const layout = buildLayout(ctx.out);
  const plan = await readJson<BuildPlan>(layout.plan);
  const selection = await readJson<Selection>(layout.select);
  const counts = new Map<string, ComponentCounts>(ctx.spec.components.map((c) => [c.name, emptyCounts()]));
  const quarantineLines: string[] = [];
  for (let n = 0; n < plan.partitions.length; n++) {
    const part = await readJson<PartSummary>(layout.partSummary(n));
    mergeCounts(counts.get(part.component) as ComponentCounts, { ...part.counts, kept: 0, emitted: 0 });
    const q = Buffer.from(await storageFor(ctx.out).readAll(layout.partQuarantine(n))).toString('utf8');
    for (const line of q.split('\n')) if (line) quarantineLines.push(line);
  }
  // Near-duplicate drops carry a quarantine record each (with the kept sample's id).
  const near = Buffer.from(await storageFor(ctx.out).readAll(layout.nearDupQuarantine)).toString('utf8');
  for (const line of near.split('\n')) if (line) quarantineLines.push(line);
  const problems: string[] = [];
  for (const c of ctx.spec.components) {
    const cc = counts.get(c.name) as ComponentCounts;
    const sel = selection.components[c.name];
    cc.kept = sel.kept;
    cc.emitted = sel.emitted;
    if (sel.dedup) cc.dropped.dedup = sel.dedup;
    if (sel.notTaken) cc.dropped['not-taken'] = sel.notTaken;
    if (sel.nearDuplicateImage) cc.dropped['near-duplicate-image'] = sel.nearDuplicateImage;
    if (sel.nearDuplicateText) cc.dropped['near-duplicate-text'] = sel.nearDuplicateText;
    const problem = checkBalance(c.name, cc);
    if (problem) problems.push(problem);
  }
  const shards: ShardResult[] = [];
  for (let s = 0; s < selection.shards; s++) {
    const r = await readJson<ShardResult>(layout.done('write-result', s));
    const info = await storageFor(ctx.out).stat(layout.shard(s));
    if (!info || info.size !== r.bytes)
      problems.push(`shard ${s}: missing or size differs from its write record`);
    shards.push(r);
  }
  const rows = shards.reduce((a, s) => a + s.rows, 0);
  if (rows !== selection.totalEmitted)
    problems.push(`shards hold ${rows} rows, select emitted ${selection.totalEmitted}`);
  if (problems.length) throw new Error(`finalize: build is inconsistent:\n  ${problems.join('\n  ')}`);

  // Shards of an earlier build into the same output (a changed spec may have had more) would be picked up by
  // anyone globbing shards/*.parquet: remove the shard files this build did not write, by their name only (a
  // file someone else put there stops the build before it starts, see build-envelope.ts).
  const ours = new Set(shards.map((s) => layout.shard(s.shard)));
  for await (const f of filesUnder(joinUri(ctx.out, 'shards')))
    if (SHARD_FILE.test(`shards/${f.rel}`) && !ours.has(f.uri)) await storageFor(ctx.out).delete(f.uri);

  const stats = emptyShardStats();
  for (const s of shards) mergeShardStats(stats, s.stats);
  quarantineLines.sort();
  // Loaded when the job runs: the graph's list, which `status` and `cancel` read, stays without sharp and zstd.
  const { writeQuarantineTable } = await import('../../manifests/quarantine-table.ts');
  const q = await writeQuarantineTable(layout, quarantineLines);
  const manifest: Manifest = {
    schema: 'mixforge.manifest/v1',
    sampleSchema: 'mixforge.sample/v1',
    name: ctx.spec.name,
    seed: ctx.spec.seed,
    specHash: ctx.specHash,
    // Key order from canonical JSON: the same whether the context came from the caller or from context.json.
    spec: JSON.parse(canonicalJson(ctx.spec)) as BuildContext['spec'],
    inputs: plan.inputs.map((i) => ({
      uri: i.uri,
      component: i.component,
      size: i.size,
      etag: i.etag,
      mtimeMs: i.mtimeMs,
    })),
    components: ctx.spec.components.map((c) => {
      const sel = selection.components[c.name];
      const asked = c.take?.count;
      return {
        name: c.name,
        format: c.source.format,
        transform: c.transform ?? null,
        counts: sortedDrops(counts.get(c.name) as ComponentCounts),
        ...(asked !== undefined && asked > sel.candidates
          ? { take: { asked, available: sel.candidates, kept: sel.kept } }
          : {}),
      };
    }),
    totals: {
      rows,
      shards: shards.length,
      bytes: shards.reduce((a, s) => a + s.bytes, 0),
      quarantined: quarantineLines.length,
    },
    shards: shards.map((s) => ({
      path: s.path,
      rows: s.rows,
      bytes: s.bytes,
      sha256: s.sha256,
      ...(s.rowGroupSha256 && s.footer ? { rowGroupSha256: s.rowGroupSha256, footer: s.footer } : {}),
    })),
    quarantine: q,
    stats,
  };
  await storageFor(ctx.out).writeAtomic(layout.manifest, `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

export const finalize = defineStage({
  name: 'finalize',
  fanOut: 'one',
  outputs: async (ctx) => {
    const l = buildLayout(ctx.out);
    return [l.manifest, l.quarantine];
  },
  run: (ctx) => runFinalize(ctx),
  summary: (m) => ({ rows: m.totals.rows, shards: m.totals.shards }),
});
