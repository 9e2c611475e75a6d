// ingest(partition): read → normalise → validate → filter → image normalise → keys; writes a part file of kept
// records, a keys file for select, the partition's quarantine records and its counts. Streams: bounded memory.
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { keyedHash64, keyHex } from '../../core/keyed-hash.ts';
import type { QuarantineRecord } from '../../core/quarantine.ts';
import { storageFor } from '../../core/storage/index.ts';
import { getReader } from '../../sources/registry.ts';
import { type ContaminationIndex, contaminationChecker } from '../../transforms/contamination.ts';
import type { BuildContext } from '../context.ts';
import { addDrop, type ComponentCounts, emptyCounts, sortedDrops } from '../counts.ts';
import { dropName, ingestStream } from '../ingest-stream.ts';
import { encodeKeyRows, type KeyRow } from '../keys-file.ts';
import { buildLayout } from '../layout.ts';
import { encodeRecord, refLine } from '../records-file.ts';
import { defineStage, PROGRESS_EVERY } from '../stage.ts';
import { readJson, writeJson } from '../storage-json.ts';
import type { BuildPlan } from './plan.ts';

export interface PartSummary {
  part: number;
  component: string;
  counts: ComponentCounts;
  /** Kept rows in the part file (= lines in the keys file). */
  rows: number;
  bytes: number;
}

/** Every partition's summary, in partition order (what the stages after ingest start from). */
export async function readPartSummaries(ctx: BuildContext): Promise<PartSummary[]> {
  const layout = buildLayout(ctx.out);
  const plan = await readJson<BuildPlan>(layout.plan);
  const parts: PartSummary[] = [];
  for (let n = 0; n < plan.partitions.length; n++)
    parts.push(await readJson<PartSummary>(layout.partSummary(n)));
  return parts;
}

export async function runIngest(
  ctx: BuildContext,
  n: number,
  signal?: AbortSignal,
  onProgress?: (records: number) => void,
): Promise<PartSummary> {
  const layout = buildLayout(ctx.out);
  const plan = await readJson<BuildPlan>(layout.plan);
  const planned = plan.partitions[n];
  if (!planned) throw new Error(`ingest ${n}: no such partition (plan has ${plan.partitions.length})`);
  const component = ctx.spec.components.find((c) => c.name === planned.component);
  if (!component) throw new Error(`ingest ${n}: component '${planned.component}' not in spec`);
  const reader = await getReader(component.source.format);
  // Loaded when the job runs: the graph's list, which `status` and `cancel` read, stays without sharp and zstd.
  const { makeRecordProcessor } = await import('../record-processor.ts');
  const process = await makeRecordProcessor(ctx.spec, component);

  // Decontamination: the evaluation sets' index (contamination-index wrote it), checked on every kept sample.
  const contaminatedBy = ctx.spec.decontaminate?.length
    ? contaminationChecker(await readJson<ContaminationIndex>(layout.contamination))
    : undefined;
  const counts = emptyCounts();
  const quarantine: QuarantineRecord[] = [];
  const keys: KeyRow[] = [];
  const partStream = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
  // A failed read destroys the stream with the error; the writer reports it through `written`, so no crash here.
  partStream.on('error', () => undefined);
  const written = storageFor(ctx.out).writeAtomic(layout.part(n), partStream);
  // The same rows without their image bytes, which point into the part file: what shuffle moves (docs/build.md).
  const rowsStream = new PassThrough({ highWaterMark: 1024 * 1024 });
  rowsStream.on('error', () => undefined);
  const rowsWritten = storageFor(ctx.out).writeAtomic(layout.partRows(n), rowsStream);
  let bytes = 0;
  try {
    // Recycled reads: nothing below keeps an outcome's image bytes past its iteration (encodeRecord copies them
    // into the frame; quarantine records, keys and counts hold none), which is what ingestStream's release needs.
    const outcomes = ingestStream(
      reader.read(planned.partition, { recycle: true }),
      process.run,
      process.window,
    );
    for await (const outcome of outcomes) {
      signal?.throwIfAborted();
      counts.in++;
      if (counts.in % PROGRESS_EVERY === 0) onProgress?.(counts.in);
      const drop = dropName(outcome);
      if (drop !== undefined) addDrop(counts, drop);
      if (outcome.kind === 'quarantine') quarantine.push(outcome.record);
      else if (outcome.kind === 'kept') {
        const s = outcome.sample;
        const evalSet = contaminatedBy?.(s.conversations, outcome.imageHashes ?? []);
        if (evalSet !== undefined) {
          addDrop(counts, `contaminated:${evalSet}`);
          continue;
        }
        const takeKey = keyHex(keyedHash64(ctx.spec.seed, `take:${component.name}`, s.id));
        const record = { ...s, component: component.name, dedupKey: outcome.dedupKey, takeKey };
        const frame = encodeRecord(record);
        const line = refLine(record, bytes, frame);
        bytes += frame.length;
        const nd = outcome.nearDup;
        keys.push({
          takeKey,
          dedupKey: outcome.dedupKey,
          bytes: frame.length,
          ...(nd
            ? {
                near: {
                  images: nd.images,
                  text: nd.text,
                  textDigest: nd.textDigest,
                  source: s.source,
                  origin: s.origin,
                },
              }
            : {}),
          id: s.id,
        });
        if (!partStream.write(frame)) await once(partStream, 'drain');
        if (!rowsStream.write(line)) await once(rowsStream, 'drain');
      }
    }
    partStream.end();
    rowsStream.end();
    await Promise.all([written, rowsWritten]);
  } catch (err) {
    partStream.destroy(err as Error);
    rowsStream.destroy(err as Error);
    await Promise.all([written.catch(() => undefined), rowsWritten.catch(() => undefined)]);
    throw err;
  }
  await storageFor(ctx.out).writeAtomic(layout.partKeys(n), encodeKeyRows(keys));
  await storageFor(ctx.out).writeAtomic(
    layout.partQuarantine(n),
    quarantine.map((q) => `${JSON.stringify({ ...q, component: component.name })}\n`).join(''),
  );
  const summary: PartSummary = {
    part: n,
    component: component.name,
    counts: sortedDrops(counts),
    rows: keys.length,
    bytes,
  };
  await writeJson(layout.partSummary(n), summary);
  return summary;
}

export const ingest = defineStage({
  name: 'ingest',
  fanOut: 'partitions',
  parent: 'near-dedup-plan',
  scratch: ['parts', 'quarantine'],
  outputs: async (ctx, n) => {
    const l = buildLayout(ctx.out);
    return [l.part(n), l.partRows(n), l.partKeys(n), l.partQuarantine(n), l.partSummary(n)];
  },
  run: runIngest,
  summary: (s) => ({ rows: s.rows, in: s.counts.in, component: s.component }),
});
