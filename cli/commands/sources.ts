// `mixforge sources read`: read one source with its reader, run the per-sample transforms, print one JSON line per
// kept sample (images summarised, not their bytes) and write quarantine records to a file. For looking at data.
import { once } from 'node:events';
import type { WriteStream } from 'node:fs';
import type { Command } from 'commander';
import { SpecError } from '../../core/errors.ts';
import type { QuarantineRecord } from '../../core/quarantine.ts';
import type { Partition, ReadItem } from '../../sources/types.ts';
import type { ComponentTransformOptions } from '../../transforms/component-options.ts';
import type { ImageNormaliser } from '../../transforms/image-pool.ts';
import { intFlag, numberFlag } from '../flags.ts';

// Library modules load inside the action (sharp, readers, worker pool): other commands start without them.

export interface ReadFlags {
  limit?: number;
  partition?: string;
  quarantine?: string;
  imageRoot?: string;
  deriveIds?: boolean;
  component?: string;
  transform?: string;
  seed?: string;
  spec?: string;
  workers?: number;
  targetRecords?: number;
  targetBytes?: number;
  imageOnly?: boolean;
  maxImages?: number;
  minSide?: number;
  maxSide?: number;
  maxAspect?: number;
  maxChars?: number;
  maxTokens?: number;
  includeSource: string[];
  excludeSource: string[];
  resizeMaxSide?: number;
  jpegQuality?: number;
  reencodeFormat?: string;
  animated?: string;
  maxPixels?: number;
}

const collect = (v: string, prev: string[]) => [...prev, v];

/** `i/n` with 0 ≤ i < n. */
export function parsePartitionFlag(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : Number.NaN;
  const count = m ? Number(m[2]) : Number.NaN;
  if (!m || count < 1 || index >= count) {
    throw new SpecError('command line', '--partition', `expected i/n with 0 ≤ i < n, got '${text}'`);
  }
  return { index, count };
}

/** Partitions whose index mod n is i: for a fixed n, the i = 0..n-1 selections cover the plan exactly once. */
export function selectPartitions(partitions: Partition[], index: number, count: number): Partition[] {
  return partitions.filter((_, k) => k % count === index);
}

/** The spec file (if any) with the flags laid over it, validated by the same schema a mixture spec embeds. */
export async function optionsFromFlags(flags: ReadFlags): Promise<ComponentTransformOptions> {
  const { ComponentTransformOptionsSchema } = await import('../../transforms/component-options.ts');
  const { loadComponentOptions } = await import('../../manifests/spec.ts');
  const { SpecValidationError, specErrorMap, toSpecIssue } = await import('../../manifests/spec-errors.ts');
  const base = flags.spec
    ? await loadComponentOptions(flags.spec, { env: process.env })
    : ComponentTransformOptionsSchema.parse({});
  const filters: Record<string, unknown> = { ...base.filters };
  const set = (key: string, v: unknown) => {
    if (v !== undefined) filters[key] = v;
  };
  set('image_only', flags.imageOnly);
  set('max_images', flags.maxImages);
  set('min_side', flags.minSide);
  set('max_side', flags.maxSide);
  set('max_aspect', flags.maxAspect);
  set('max_chars', flags.maxChars);
  set('max_tokens', flags.maxTokens);
  if (flags.includeSource.length) filters.include_sources = flags.includeSource;
  if (flags.excludeSource.length) filters.exclude_sources = flags.excludeSource;
  const images: Record<string, unknown> = { ...base.images };
  if (flags.resizeMaxSide !== undefined) images.max_side = flags.resizeMaxSide;
  if (flags.jpegQuality !== undefined) images.jpeg_quality = flags.jpegQuality;
  if (flags.reencodeFormat !== undefined) images.reencode_format = flags.reencodeFormat;
  if (flags.animated !== undefined) images.animated = flags.animated;
  if (flags.maxPixels !== undefined) images.max_pixels = flags.maxPixels;
  const seed =
    flags.seed === undefined ? base.seed : /^\d+$/.test(flags.seed) ? Number(flags.seed) : flags.seed;
  const merged = { transform: flags.transform ?? base.transform, filters, images, seed };
  const parsed = ComponentTransformOptionsSchema.safeParse(merged, {
    error: specErrorMap,
    reportInput: true,
  });
  if (!parsed.success)
    throw new SpecValidationError(
      'command line',
      parsed.error.issues.map((i) => toSpecIssue(i)),
    );
  return parsed.data;
}

/** What one kept sample looks like on stdout: images as their size, format and digest. */
export interface SampleLine {
  id: string;
  source: string;
  origin: string;
  images: { width: number; height: number; format: string; sha256: string }[];
  conversations: { from: string; value: string }[];
  /** Fields the source carried beyond the schema (the shard's metadata column). */
  metadata: Record<string, unknown>;
  dedup_key: string;
}

export interface ReadSummary {
  read: number;
  kept: number;
  filtered: Record<string, number>;
  quarantined: Record<string, number>;
}

async function writeLine(stream: NodeJS.WritableStream | WriteStream, line: string): Promise<void> {
  if (!stream.write(line)) await once(stream, 'drain');
}

/** Runs the command; exported so tests can drive it without a process. */
export async function runSourcesRead(format: string, uris: string[], flags: ReadFlags): Promise<ReadSummary> {
  const { createWriteStream } = await import('node:fs');
  const { expandGlobs } = await import('../../core/storage/index.ts');
  const { ingestStream } = await import('../../pipelines/ingest-stream.ts');
  const { getReader } = await import('../../sources/registry.ts');
  const { createImagePool, inlineImageNormaliser } = await import('../../transforms/image-pool.ts');
  const { processRecord } = await import('../../transforms/process.ts');
  const reader = await getReader(format);
  const options = await optionsFromFlags(flags);
  const component = flags.component ?? format;
  const files = await expandGlobs(uris);
  if (files.length === 0) throw new SpecError('command line', '<uri…>', `no files match ${uris.join(' ')}`);
  const planned = await reader.plan(files, {
    ...(flags.imageRoot ? { imageRoot: flags.imageRoot } : {}),
    ...(flags.deriveIds ? { ids: 'derive' as const } : {}),
    ...(flags.targetRecords ? { targetRecords: flags.targetRecords } : {}),
    ...(flags.targetBytes ? { targetBytes: flags.targetBytes } : {}),
  });
  const { index, count } = flags.partition ? parsePartitionFlag(flags.partition) : { index: 0, count: 1 };
  const partitions = selectPartitions(planned, index, count);

  const pool =
    flags.workers === 0 ? undefined : createImagePool(flags.workers ? { size: flags.workers } : {});
  const images: ImageNormaliser = pool ?? inlineImageNormaliser;
  // Enough records in flight to keep every worker busy while output stays in read order.
  const window = 4 * (pool?.size ?? 1);
  const quarantineOut = flags.quarantine ? createWriteStream(flags.quarantine) : undefined;
  const summary: ReadSummary = { read: 0, kept: 0, filtered: {}, quarantined: {} };
  const bump = (m: Record<string, number>, k: string) => {
    m[k] = (m[k] ?? 0) + 1;
  };
  const onQuarantine = async (q: QuarantineRecord) => {
    bump(summary.quarantined, q.reason);
    if (quarantineOut) await writeLine(quarantineOut, `${JSON.stringify({ ...q, component })}\n`);
  };

  async function* items(): AsyncGenerator<ReadItem> {
    for (const p of partitions) {
      for await (const item of reader.read(p)) {
        if (flags.limit !== undefined && summary.read >= flags.limit) return;
        summary.read++;
        yield item;
      }
    }
  }

  try {
    const outcomes = ingestStream(
      items(),
      (raw) => processRecord(raw, { component, options, images }),
      window,
    );
    for await (const outcome of outcomes) {
      if (outcome.kind === 'quarantine') await onQuarantine(outcome.record);
      else if (outcome.kind === 'filtered') bump(summary.filtered, outcome.filter);
      else {
        summary.kept++;
        const s = outcome.sample;
        const line: SampleLine = {
          id: s.id,
          source: s.source,
          origin: s.origin,
          images: s.images.map((im, i) => ({
            width: im.width,
            height: im.height,
            format: im.format,
            sha256: outcome.imageDigests[i],
          })),
          conversations: s.conversations,
          metadata: JSON.parse(s.metadata) as Record<string, unknown>,
          dedup_key: outcome.dedupKey,
        };
        await writeLine(process.stdout, `${JSON.stringify(line)}\n`);
      }
    }
  } finally {
    await images.close();
    if (quarantineOut) {
      quarantineOut.end();
      await once(quarantineOut, 'close');
    }
  }
  return summary;
}

export function registerSources(program: Command): void {
  const sources = program
    .command('sources')
    .description('look at one source through its reader and transforms');
  sources
    .command('read <format> <uri...>')
    .description(
      'read a source (files or globs, local or s3://), transform each record and print one JSON line per kept sample',
    )
    .option('--limit <n>', 'stop after n input records', intFlag('--limit'))
    .option('--partition <i/n>', 'plan the files into partitions and read those whose index mod n is i')
    .option('--target-records <n>', 'plan parquet partitions of about n records', intFlag('--target-records'))
    .option('--target-bytes <n>', 'plan json/jsonl partitions of about n bytes', intFlag('--target-bytes'))
    .option('--quarantine <file>', 'write quarantine records here as JSON lines')
    .option('--image-root <dir>', 'folder, s3:// prefix or archive holding referenced images')
    .option('--derive-ids', 'number records <file stem>/<position> instead of reading their id (ids: derive)')
    .option('--component <name>', 'component name prefixing every id (default: the format)')
    .option('--spec <file>', 'YAML with {transform, filters, images, seed}; flags override it')
    .option('--transform <kind>', 'triplet | none')
    .option('--seed <s>', 'seed of every keyed choice (triplet question and placement)')
    .option(
      '--workers <n>',
      'image worker threads (default: every core; 0: in this thread)',
      intFlag('--workers'),
    )
    .option('--image-only', 'filter: drop text-only samples')
    .option('--max-images <n>', 'filter: drop samples with more images', intFlag('--max-images'))
    .option('--min-side <px>', 'filter: drop samples with an image side below this', intFlag('--min-side'))
    .option('--max-side <px>', 'filter: drop samples with an image side above this', intFlag('--max-side'))
    .option(
      '--max-aspect <r>',
      'filter: drop samples with an image aspect ratio above this',
      numberFlag('--max-aspect'),
    )
    .option('--max-chars <n>', 'filter: drop samples with more text characters', intFlag('--max-chars'))
    .option(
      '--max-tokens <n>',
      'filter: drop samples with more estimated text tokens',
      intFlag('--max-tokens'),
    )
    .option('--include-source <glob>', 'filter: keep only these sources (repeatable)', collect, [])
    .option('--exclude-source <glob>', 'filter: drop these sources (repeatable)', collect, [])
    .option(
      '--resize-max-side <px>',
      'images: downscale so no side exceeds this (default 2048)',
      intFlag('--resize-max-side'),
    )
    .option(
      '--jpeg-quality <q>',
      'images: quality of re-encoded JPEGs (default 95)',
      intFlag('--jpeg-quality'),
    )
    .option('--reencode-format <f>', 'images: jpeg | png for re-encoded images (default jpeg)')
    .option('--animated <policy>', 'images: first-frame | reject (default first-frame)')
    .option('--max-pixels <n>', 'images: decompression-bomb limit in pixels', intFlag('--max-pixels'))
    .action(async (format: string, uris: string[], flags: ReadFlags) => {
      // `… | head` closes stdout early: that is the reader being done, not an error.
      process.stdout.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EPIPE') process.exit(0);
        throw err;
      });
      const s = await runSourcesRead(format, uris, flags);
      const list = (m: Record<string, number>) =>
        Object.entries(m)
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([k, v]) => `${k} ${v}`)
          .join(', ') || 'none';
      process.stderr.write(
        `read ${s.read}: kept ${s.kept}; filtered: ${list(s.filtered)}; quarantined: ${list(s.quarantined)}\n`,
      );
    });
}
