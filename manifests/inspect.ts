// `mixforge inspect`: totals, a per-component/per-source table and a few samples, as plain text.
import { manifestRoot, readManifest } from './manifest.ts';
import { verifiedShardSamples } from './verified-shard.ts';

export async function inspectBuild(out: string, opts: { samples: number; source?: string }): Promise<string> {
  const m = await readManifest(out);
  const lines: string[] = [];
  lines.push(`mixture ${m.name}  seed ${m.seed}  spec ${m.specHash.slice(0, 12)}`);
  lines.push(
    `rows ${m.totals.rows}  shards ${m.totals.shards}  bytes ${(m.totals.bytes / 1e6).toFixed(1)} MB  quarantined ${m.totals.quarantined}`,
  );
  lines.push('');
  lines.push(
    `${'component'.padEnd(20)} ${'in'.padStart(8)} ${'kept'.padStart(8)} ${'rows'.padStart(8)}  dropped`,
  );
  for (const c of m.components) {
    const drops = Object.entries(c.counts.dropped)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    lines.push(
      `${c.name.padEnd(20)} ${String(c.counts.in).padStart(8)} ${String(c.counts.kept).padStart(8)} ${String(c.counts.emitted).padStart(8)}  ${drops}`,
    );
  }
  lines.push('');
  lines.push(`${'source'.padEnd(40)} ${'rows'.padStart(8)}`);
  const bySource = new Map<string, number>();
  for (const per of Object.values(m.stats.bySource))
    for (const [s, n] of Object.entries(per)) bySource.set(s, (bySource.get(s) ?? 0) + n);
  for (const [s, n] of [...bySource].sort(([a], [b]) => (a < b ? -1 : 1)))
    lines.push(`${s.padEnd(40)} ${String(n).padStart(8)}`);
  lines.push('');
  let shown = 0;
  const root = manifestRoot(out);
  for (const shard of m.shards) {
    if (shown >= opts.samples) break;
    for await (const s of verifiedShardSamples(root, shard)) {
      if (opts.source && !s.source.startsWith(opts.source)) continue;
      lines.push(`── ${s.id}  [${s.source}]  ${s.origin}`);
      for (const im of s.images)
        lines.push(`   image ${im.width}×${im.height} ${im.format} ${im.bytes.byteLength} B`);
      for (const t of s.conversations) {
        const v = t.value.length > 300 ? `${t.value.slice(0, 297)}...` : t.value;
        lines.push(`   ${t.from.padEnd(6)} ${v.replaceAll('\n', '\\n')}`);
      }
      if (s.metadata !== undefined && s.metadata !== '{}') {
        const m = s.metadata.length > 300 ? `${s.metadata.slice(0, 297)}...` : s.metadata;
        lines.push(`   meta   ${m}`);
      }
      if (++shown >= opts.samples) break;
    }
  }
  return `${lines.join('\n')}\n`;
}
