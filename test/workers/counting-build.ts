// A small build with the pipeline's shape and contract, for testing the BullMQ layer before/without sharp and
// parquet: P partitions of R numbered records are keyed, routed to S shards by key, sorted, and each shard hashed.
// Every job writes atomically under deterministic keys and skips when its done marker exists, like pipelines/jobs.
// A lost or duplicated record shows up in the manifest; `runs.log` records each execution (to see reruns).
import { createHash } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { joinUri, storageFor } from '../../core/storage/index.ts';
import type { BuildContext } from '../../pipelines/context.ts';
import { STAGES, type Stage, sizeOf } from '../../pipelines/graph.ts';
import type { Count } from '../../pipelines/stage.ts';
import type { BuildJobs } from '../../workers/build-jobs.ts';

export interface CountingBuildParams {
  partitions: number;
  recordsPerPartition: number;
  shardRows: number;
  /** Each job sleeps this long (so kills and time limits land inside jobs). */
  delayMs: number;
  /** Extra delay for chosen jobs, e.g. {"ingest.1": 3000}. */
  slow?: Record<string, number>;
}

/** near-dedup-band jobs of a counting build (they find nothing; they only have to run in their place). */
export const COUNTING_BANDS = 2;

export interface CountingManifest {
  total: number;
  shards: { rows: number; sha256: string }[];
}

type Hook = (stage: Stage, n: number) => Promise<void> | void;

const read = async <T>(uri: string): Promise<T> =>
  JSON.parse(Buffer.from(await storageFor(uri).readAll(uri)).toString('utf8')) as T;
const write = async (uri: string, v: unknown) => {
  await storageFor(uri).writeAtomic(uri, `${JSON.stringify(v)}\n`);
};
/** A sleep that does not keep the process alive (abandoned jobs of a finished test must not delay its exit). */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
const key = (v: number) =>
  Number.parseInt(createHash('sha256').update(`counting:${v}`).digest('hex').slice(0, 8), 16);

export function countingContext(buildId: string, out: string): BuildContext {
  // The processor reads only buildId and out; the spec is not needed by these jobs.
  return {
    buildId,
    out,
    specHash: 'counting',
    options: { partitionRecords: 1, partitionBytes: 1, keepIntermediate: true },
  } as unknown as BuildContext;
}

export async function writeCountingContext(ctx: BuildContext): Promise<void> {
  await write(joinUri(ctx.out, '_build', 'context.json'), ctx);
}

/** `beforeRun` runs inside each real execution (not skipped ones): tests throw from it to inject failures. */
export function countingBuild(params: CountingBuildParams, beforeRun?: Hook): BuildJobs {
  const b = (out: string, ...p: string[]) => joinUri(out, '_build', ...p);
  const count = async (ctx: BuildContext, c: Count) => {
    if (c === 'shards') return (await read<{ shards: number }>(b(ctx.out, 'select.json'))).shards;
    if (c === 'bands') return (await read<{ bands: number }>(b(ctx.out, 'near-dup', 'bands.json'))).bands;
    return (await read<{ partitions: number }>(b(ctx.out, 'plan.json'))).partitions;
  };
  const execute = async (ctx: BuildContext, stage: Stage, n: number): Promise<number> => {
    const out = ctx.out;
    switch (stage) {
      case 'plan':
        await write(b(out, 'plan.json'), { partitions: params.partitions });
        return 0;
      case 'ingest': {
        const r = params.recordsPerPartition;
        const rows = Array.from({ length: r }, (_, i) => n * r + i).map((v) => ({ v, key: key(v) }));
        await write(b(out, 'parts', `${n}.json`), rows);
        return rows.length;
      }
      case 'contamination-index':
        await write(b(out, 'contamination.json'), { sets: [] });
        return 0;
      case 'near-dedup-plan':
        await write(b(out, 'near-dup', 'bands.json'), { bands: COUNTING_BANDS });
        return 0;
      case 'near-dedup-band':
        // Nothing to find in counting rows: the band jobs only have to run, in their place, before near-dedup.
        await write(b(out, 'near-dup', `band-${n}.json`), { pairs: 0 });
        return 0;
      case 'near-dedup':
        // Reads every band's output: a near-dedup that ran before its band jobs fails.
        for (let i = 0; i < COUNTING_BANDS; i++) await read(b(out, 'near-dup', `band-${i}.json`));
        await write(b(out, 'near-dup.json'), { enabled: false });
        return 0;
      case 'select': {
        let total = 0;
        for (let i = 0; i < params.partitions; i++)
          total += (await read<unknown[]>(b(out, 'parts', `${i}.json`))).length;
        await write(b(out, 'select.json'), { shards: Math.ceil(total / params.shardRows), total });
        return total;
      }
      case 'shuffle': {
        const { shards } = await read<{ shards: number }>(b(out, 'select.json'));
        const buckets: { v: number; key: number }[][] = Array.from({ length: shards }, () => []);
        for (const row of await read<{ v: number; key: number }[]>(b(out, 'parts', `${n}.json`))) {
          buckets[Math.floor((row.key / 2 ** 32) * shards)]?.push(row);
        }
        await write(b(out, 'buckets', `${n}.json`), buckets);
        return buckets.reduce((a, x) => a + x.length, 0);
      }
      case 'route': {
        // shard → the partitions whose bucket holds rows of it.
        const { shards } = await read<{ shards: number }>(b(out, 'select.json'));
        const routes: number[][] = Array.from({ length: shards }, () => []);
        for (let i = 0; i < params.partitions; i++) {
          const buckets = await read<unknown[][]>(b(out, 'buckets', `${i}.json`));
          buckets.forEach((rows, s) => {
            if (rows.length > 0) routes[s].push(i);
          });
        }
        await write(b(out, 'routes.json'), routes);
        return 0;
      }
      case 'write': {
        const rows: { v: number; key: number }[] = [];
        for (const i of (await read<number[][]>(b(out, 'routes.json')))[n])
          rows.push(
            ...((await read<{ v: number; key: number }[][]>(b(out, 'buckets', `${i}.json`)))[n] ?? []),
          );
        rows.sort((x, y) => x.key - y.key || x.v - y.v);
        await write(joinUri(out, 'shards', `shard-${n}.json`), rows);
        return rows.length;
      }
      case 'finalize': {
        const { shards, total } = await read<{ shards: number; total: number }>(b(out, 'select.json'));
        const m: CountingManifest = { total, shards: [] };
        const seen = new Set<number>();
        for (let s = 0; s < shards; s++) {
          const uri = joinUri(out, 'shards', `shard-${s}.json`);
          const bytes = await storageFor(uri).readAll(uri);
          const rows = JSON.parse(Buffer.from(bytes).toString('utf8')) as { v: number }[];
          for (const r of rows) {
            if (seen.has(r.v)) throw new Error(`finalize: record ${r.v} appears twice`);
            seen.add(r.v);
          }
          m.shards.push({ rows: rows.length, sha256: createHash('sha256').update(bytes).digest('hex') });
        }
        if (seen.size !== total)
          throw new Error(`finalize: ${seen.size} records in shards, expected ${total}`);
        await write(joinUri(out, 'manifest.json'), m);
        return total;
      }
    }
  };
  return {
    async readContext(out) {
      return read<BuildContext>(b(out, 'context.json'));
    },
    async run(ctx, stage, n, _signal, onProgress) {
      const marker = b(ctx.out, 'done', `${stage}-${n}.json`);
      if (await storageFor(marker).stat(marker))
        return { ran: false, result: await read<Record<string, unknown>>(marker) };
      if (!ctx.out.startsWith('s3://')) {
        const log = b(ctx.out, 'runs.log');
        await mkdir(dirname(log), { recursive: true });
        await appendFile(log, `${stage}.${n}\n`);
      }
      await beforeRun?.(stage, n);
      // Half an ingest's records "handled" before its delay, so a follower can see progress within the job.
      if (stage === 'ingest') onProgress?.(Math.floor(params.recordsPerPartition / 2));
      await sleep(params.delayMs + (params.slow?.[`${stage}.${n}`] ?? 0));
      const rows = await execute(ctx, stage, n);
      await write(marker, { rows });
      return { ran: true, result: { rows } };
    },
    count,
    async finished() {},
  };
}

/** Runs the counting build in this process, stage by stage: the reference the queue builds must equal. */
export async function runCountingInProcess(
  ctx: BuildContext,
  params: CountingBuildParams,
): Promise<CountingManifest> {
  const jobs = countingBuild({ ...params, delayMs: 0, slow: {} });
  for (const stage of STAGES) {
    const total = await sizeOf(stage, (c) => jobs.count(ctx, c));
    for (let n = 0; n < total; n++) await jobs.run(ctx, stage, n);
  }
  return readCountingManifest(ctx.out);
}

/** The manifest a counting build wrote under `out`. */
export function readCountingManifest(out: string): Promise<CountingManifest> {
  return read<CountingManifest>(joinUri(out, 'manifest.json'));
}

/** Every real execution of a job of the counting build under the local folder `out`, in order, as `<stage>.<n>`. */
export async function readCountingRuns(out: string): Promise<string[]> {
  return (await readFile(joinUri(out, '_build', 'runs.log'), 'utf8')).trim().split('\n');
}
