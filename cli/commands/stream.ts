// `mixforge stream <manifest>`: print the sample ids a rank/worker of the streaming loader would get, one per line,
// optionally resuming from and saving a loader state (for inspection and tests).
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
}

export function registerStream(program: Command): void {
  program
    .command('stream <manifest>')
    .description('print the sample ids one loader rank/worker gets, in order, one per line')
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
    .action(async (manifest: string, flags: StreamFlags) => {
      const { normaliseUri, storageFor } = await import('../../core/storage/index.ts');
      const { StreamingDataset } = await import('../../train-bridge/loader/dataset.ts');
      const { parseLoaderState } = await import('../../train-bridge/loader/state.ts');
      const ds = new StreamingDataset(normaliseUri(manifest), {
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
      if (flags.resume) {
        const uri = normaliseUri(flags.resume);
        const text = Buffer.from(await storageFor(uri).readAll(uri)).toString('utf8');
        ds.resume(parseLoaderState(text, flags.resume));
      }
      await ds.open();
      const limit = flags.limit ?? Number.POSITIVE_INFINITY;
      let printed = 0;
      let chunk = '';
      const flush = async () => {
        if (chunk && !process.stdout.write(chunk)) await once(process.stdout, 'drain');
        chunk = '';
      };
      if (limit > 0)
        for await (const s of ds) {
          chunk += `${s.id}\n`;
          if (chunk.length > 1 << 16) await flush();
          if (++printed >= limit) break;
        }
      await flush();
      if (flags.stateOut) {
        const uri = normaliseUri(flags.stateOut);
        await storageFor(uri).writeAtomic(uri, `${JSON.stringify(ds.state(), null, 2)}\n`);
      }
    });
}
