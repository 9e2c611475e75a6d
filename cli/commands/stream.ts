// `mixforge stream <manifest>` (or `--mix a.json:0.7,b.json:0.3`): print the sample ids a rank/worker of the
// streaming loader would get, one per line, optionally resuming from and saving a loader state (inspection, tests).
import { once } from 'node:events';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { intFlag } from '../flags.ts';

interface StreamFlags {
  rank: number;
  worldSize: number;
  worker: number;
  workers: number;
  seed?: number;
  epoch: number;
  limit?: number;
  stateOut?: string;
  resume?: string;
  shuffleBuffer?: number;
  lanes?: number;
  remainder?: 'pad' | 'drop';
  cacheDir?: string;
  cacheMaxBytes?: number;
  mix?: MixEntry[];
  epochSize?: number;
}

interface MixEntry {
  /** As written (the stream's name). */
  entry: string;
  manifest: string;
  sources?: string[];
  weight: number;
}

/**
 * `a.json:0.7,b.json#llava-onevision/chartqa|llava-onevision/ai2d:0.3` → streams with weights (the weight after
 * the last colon, so s3:// URIs work; sub-sources after `#`, separated by `|`).
 */
function parseMix(v: string): MixEntry[] {
  return v.split(',').map((part) => {
    const at = part.lastIndexOf(':');
    const weight = Number(part.slice(at + 1));
    if (at <= 0 || !part.slice(at + 1).trim() || !Number.isFinite(weight) || weight < 0)
      throw new InvalidArgumentError(
        `--mix entries are manifest[#source|source…]:weight (e.g. a.json:0.7), got "${part}"`,
      );
    const [manifest, sources] = part.slice(0, at).split('#');
    return {
      entry: part.slice(0, at),
      manifest,
      weight,
      ...(sources ? { sources: sources.split('|') } : {}),
    };
  });
}

export function registerStream(program: Command): void {
  program
    .command('stream [manifest]')
    .description(
      'print the sample ids one loader rank/worker gets, in order, one per line (with --mix: stream name, tab, id)',
    )
    .option(
      '--mix <list>',
      'load-time mixture of built mixtures: a.json:0.7,b.json:0.3; b.json#src1|src2:0.3 takes only those sub-sources (replaces <manifest>)',
      parseMix,
    )
    .option(
      '--epoch-size <n>',
      'samples per epoch of a --mix (default: the sum of their sizes)',
      intFlag('--epoch-size'),
    )
    .option('--rank <r>', 'this rank', intFlag('--rank'), 0)
    .option('--world-size <w>', 'number of ranks', intFlag('--world-size', 1), 1)
    .option('--worker <i>', "this worker among the rank's workers", intFlag('--worker'), 0)
    .option('--workers <n>', 'workers per rank', intFlag('--workers', 1), 1)
    .option('--seed <s>', 'seed of the epoch order (default: the mixture seed)', intFlag('--seed'))
    .option('--epoch <e>', 'epoch', intFlag('--epoch'), 0)
    .option('--limit <n>', 'stop after n samples', intFlag('--limit'))
    .option('--state-out <file>', 'write the loader state after the last printed sample')
    .option('--resume <file>', 'continue from a saved loader state (any world size)')
    .option(
      '--shuffle-buffer <n>',
      'rows shuffled together (summed over lanes)',
      intFlag('--shuffle-buffer', 1),
    )
    .option('--lanes <n>', 'canonical partitions of the order', intFlag('--lanes', 1))
    .option('--remainder <mode>', 'pad (wrap to equal counts; default) or drop (floor)', (v) => {
      if (v !== 'pad' && v !== 'drop')
        throw new InvalidArgumentError(`--remainder must be pad or drop, got "${v}"`);
      return v;
    })
    .option('--cache-dir <dir>', 'local cache for s3:// shards')
    .option('--cache-max-bytes <n>', 'cache size bound in bytes', intFlag('--cache-max-bytes', 1))
    .action(async (manifest: string | undefined, flags: StreamFlags) => {
      const { normaliseUri, storageFor } = await import('../../core/storage/index.ts');
      if ((manifest === undefined) === (flags.mix === undefined))
        throw new InvalidArgumentError('give either a manifest or --mix, not both');
      const readState = async () => {
        if (!flags.resume) return undefined;
        const uri = normaliseUri(flags.resume);
        return Buffer.from(await storageFor(uri).readAll(uri)).toString('utf8');
      };
      if (flags.mix) {
        await streamMix(flags, await readState());
        return;
      }
      const { StreamingDataset } = await import('../../train-bridge/loader/dataset.ts');
      const { parseLoaderState } = await import('../../train-bridge/loader/state.ts');
      const ds = new StreamingDataset(normaliseUri(manifest!), {
        rank: flags.rank,
        worldSize: flags.worldSize,
        workerId: flags.worker,
        numWorkers: flags.workers,
        seed: flags.seed,
        epoch: flags.epoch,
        shuffleBuffer: flags.shuffleBuffer,
        lanes: flags.lanes,
        remainder: flags.remainder,
        cacheDir: flags.cacheDir,
        cacheMaxBytes: flags.cacheMaxBytes,
      });
      const text = await readState();
      if (text !== undefined) ds.resume(parseLoaderState(text, flags.resume));
      await ds.open();
      await printIds(ds, (s) => s.id, flags);
    });
}

/** Print up to --limit lines, buffered, then write the state after the last one to --state-out. */
async function printIds<T>(
  ds: AsyncIterable<T> & { state(): unknown },
  line: (sample: T) => string,
  flags: StreamFlags,
): Promise<void> {
  const { normaliseUri, storageFor } = await import('../../core/storage/index.ts');
  const limit = flags.limit ?? Number.POSITIVE_INFINITY;
  let printed = 0;
  let chunk = '';
  const flush = async () => {
    if (chunk && !process.stdout.write(chunk)) await once(process.stdout, 'drain');
    chunk = '';
  };
  if (limit > 0)
    for await (const s of ds) {
      chunk += `${line(s)}\n`;
      if (chunk.length > 1 << 16) await flush();
      if (++printed >= limit) break;
    }
  await flush();
  if (flags.stateOut) {
    const uri = normaliseUri(flags.stateOut);
    await storageFor(uri).writeAtomic(uri, `${JSON.stringify(ds.state(), null, 2)}\n`);
  }
}

async function streamMix(flags: StreamFlags, stateText: string | undefined): Promise<void> {
  const { normaliseUri } = await import('../../core/storage/index.ts');
  const { MixedStreamingDataset } = await import('../../train-bridge/loader/mixed-dataset.ts');
  const { parseMixState } = await import('../../train-bridge/loader/mix-state.ts');
  const streams = flags.mix!.map((m) => ({
    manifest: normaliseUri(m.manifest),
    weight: m.weight,
    name: m.entry,
    sources: m.sources,
  }));
  const ds = new MixedStreamingDataset(streams, {
    rank: flags.rank,
    worldSize: flags.worldSize,
    workerId: flags.worker,
    numWorkers: flags.workers,
    seed: flags.seed,
    epoch: flags.epoch,
    epochSize: flags.epochSize,
    shuffleBuffer: flags.shuffleBuffer,
    lanes: flags.lanes,
    remainder: flags.remainder,
    cacheDir: flags.cacheDir,
    cacheMaxBytes: flags.cacheMaxBytes,
  });
  await ds.open();
  if (stateText !== undefined) ds.resume(parseMixState(stateText, flags.resume));
  if (ds.resumeNote) process.stderr.write(`resume: ${ds.resumeNote}\n`);
  const names = streams.map((s) => s.name);
  await printIds(ds, (s) => `${names[s.stream]}\t${s.id}`, flags);
}
