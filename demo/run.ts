// The demo: generate demo data in every source format (if missing), build the demo mixture in-process, verify it
// and write its report. Embedded defaults only: local disk, no Redis, no S3.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeReport } from '../manifests/report.ts';
import { loadSpec } from '../manifests/spec.ts';
import { verifyAndRecord } from '../manifests/verify-record.ts';
import { makeBuildContext } from '../pipelines/context.ts';
import type { BuildEventSink } from '../pipelines/events.ts';
import { runBuildInProcess } from '../pipelines/executor-inprocess.ts';
import { shippedSpecPath } from './spec-overrides.ts';

/** `onEvent` receives the build's progress events (the CLI passes its progress display). */
export async function runDemo(opts: { data: string; out: string; onEvent?: BuildEventSink }): Promise<void> {
  const data = resolve(opts.data);
  if (!existsSync(join(data, '.complete'))) {
    const { generateDemoData } = await import('./generate.ts');
    process.stderr.write(`writing demo data to ${data}\n`);
    await generateDemoData(data);
  }
  const spec = await loadSpec(shippedSpecPath('demo'), { env: { ...process.env, MIXFORGE_DEMO_DATA: data } });
  const ctx = makeBuildContext(spec, resolve(opts.out));
  const manifest = await runBuildInProcess(ctx, { onEvent: opts.onEvent });
  const problems = await verifyAndRecord(ctx.out);
  if (problems.length) throw new Error(`demo build does not verify:\n  ${problems.join('\n  ')}`);
  const report = await writeReport(ctx.out);
  process.stdout.write(
    `built ${manifest.totals.rows} rows in ${manifest.totals.shards} shards from ${manifest.components.length} sources\n`,
  );
  for (const c of manifest.components) {
    const drops = Object.entries(c.counts.dropped)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    process.stdout.write(
      `  ${c.name.padEnd(10)} in ${c.counts.in}  rows ${c.counts.emitted}${drops ? `  dropped: ${drops}` : ''}\n`,
    );
  }
  process.stdout.write(`manifest: ${join(ctx.out, 'manifest.json')}\nreport:   ${report}\nverify:   ok\n`);
}
