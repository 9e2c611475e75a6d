// plan: resolve every component's inputs (globs on disk/S3) and cut them into partitions of roughly equal work.
import { expandGlobs, type ObjectInfo } from '../../core/storage/index.ts';
import { takeSize } from '../../manifests/spec-schema.ts';
import { getReader } from '../../sources/registry.ts';
import type { Partition } from '../../sources/types.ts';
import type { BuildContext } from '../context.ts';
import { buildLayout } from '../layout.ts';
import { defineStage } from '../stage.ts';
import { readJson, writeJson } from '../storage-json.ts';

export interface PlannedPartition {
  component: string;
  partition: Partition;
}

export interface BuildPlan {
  buildId: string;
  specHash: string;
  inputs: (ObjectInfo & { component: string })[];
  partitions: PlannedPartition[];
}

export async function planBuild(ctx: BuildContext): Promise<BuildPlan> {
  const inputs: BuildPlan['inputs'] = [];
  const partitions: PlannedPartition[] = [];
  for (const c of ctx.spec.components) {
    const files = await expandGlobs(c.source.uris);
    if (files.length === 0)
      throw new Error(`component '${c.name}': no input matches ${c.source.uris.join(', ')}`);
    for (const f of files) inputs.push({ ...f, component: c.name });
    const reader = await getReader(c.source.format);
    const parts = await reader.plan(files, {
      imageRoot: c.source.image_root,
      ids: c.source.ids,
      targetRecords: ctx.options.partitionRecords,
      targetBytes: ctx.options.partitionBytes,
    });
    for (const p of parts) partitions.push({ component: c.name, partition: p });
  }
  return { buildId: ctx.buildId, specHash: ctx.specHash, inputs, partitions };
}

export async function runPlan(ctx: BuildContext): Promise<{ partitions: number }> {
  const plan = await planBuild(ctx);
  await writeJson(buildLayout(ctx.out).plan, plan);
  return { partitions: plan.partitions.length };
}

export interface PlanSummary {
  components: {
    name: string;
    format: string;
    files: number;
    inputBytes: number;
    records: number;
    /** False when some partition's record count is an estimate (json/jsonl byte ranges). */
    recordsExact: boolean;
    /** Rows after take and repeat, before filters, dedup and quarantine (which only lower it). */
    expectedRows: number;
    /** Image bytes per record found by sampleImageBytes (json/jsonl: images are outside the annotation files). */
    imageBytesPerRecord: number;
    estimatedBytes: number;
  }[];
  expectedRows: number;
  estimatedBytes: number;
}

/** Records read per sampled partition, and partitions sampled per component, by sampleImageBytes. */
const SAMPLE_RECORDS = 8;
const SAMPLE_PARTITIONS = 4;

/**
 * Mean image bytes per record of each json/jsonl component, from a few records at the start of up to four
 * partitions spread over it: their images live in an image root, not in the annotation files whose sizes the plan
 * knows. Parquet components carry their images inline, so their input sizes already count them (absent here).
 */
export async function sampleImageBytes(
  spec: BuildContext['spec'],
  plan: BuildPlan,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const c of spec.components) {
    const parts = plan.partitions.filter((p) => p.component === c.name && p.partition.kind === 'bytes');
    if (parts.length === 0) continue;
    const reader = await getReader(c.source.format);
    const picked = new Set(
      Array.from({ length: Math.min(SAMPLE_PARTITIONS, parts.length) }, (_, i) =>
        Math.floor((i * parts.length) / Math.min(SAMPLE_PARTITIONS, parts.length)),
      ),
    );
    let records = 0;
    let bytes = 0;
    for (const i of picked) {
      let taken = 0;
      for await (const item of reader.read(parts[i].partition)) {
        if (item.kind !== 'record') continue;
        records++;
        for (const image of item.record.images) bytes += image.bytes.byteLength;
        if (++taken >= SAMPLE_RECORDS) break;
      }
    }
    if (records > 0) out[c.name] = bytes / records;
  }
  return out;
}

/**
 * What `mixforge plan` prints: per-component record counts and an output-size estimate from the input sizes,
 * plus `imageBytesPerRecord` (sampleImageBytes) for components whose images are not in their input files.
 */
export function summarisePlan(
  spec: BuildContext['spec'],
  plan: BuildPlan,
  imageBytesPerRecord: Record<string, number> = {},
): PlanSummary {
  const components = spec.components.map((c) => {
    const files = plan.inputs.filter((i) => i.component === c.name);
    const parts = plan.partitions.filter((p) => p.component === c.name);
    const records = parts.reduce((a, p) => a + (p.partition.records ?? 0), 0);
    const recordsExact = parts.every((p) => p.partition.kind === 'row-groups');
    const expectedRows = takeSize(c.take, records) * (c.repeat ?? 1);
    const inputBytes = files.reduce((a, f) => a + f.size, 0);
    const perImage = imageBytesPerRecord[c.name] ?? 0;
    const estimatedBytes = records
      ? Math.round((inputBytes * expectedRows) / records + perImage * expectedRows)
      : 0;
    return {
      name: c.name,
      format: c.source.format,
      files: files.length,
      inputBytes,
      records,
      recordsExact,
      expectedRows,
      imageBytesPerRecord: Math.round(perImage),
      estimatedBytes,
    };
  });
  return {
    components,
    expectedRows: components.reduce((a, c) => a + c.expectedRows, 0),
    estimatedBytes: components.reduce((a, c) => a + c.estimatedBytes, 0),
  };
}

export const plan = defineStage({
  name: 'plan',
  fanOut: 'one',
  reveals: {
    count: 'partitions',
    read: async (ctx) => (await readJson<BuildPlan>(buildLayout(ctx.out).plan)).partitions.length,
  },
  outputs: async (ctx) => [buildLayout(ctx.out).plan],
  run: (ctx) => runPlan(ctx),
  summary: (r) => r,
});
