// `mixforge export <out> --format llava|webdataset --dest DIR`: write a built mixture in the formats other trainers
// read (LLaVA JSON + images folder; WebDataset tar shards), streaming, in stored order.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { intFlag } from '../flags.ts';

interface ExportFlags {
  format: 'llava' | 'webdataset';
  dest: string;
  jsonName: string;
  samplesPerShard: number;
  maxShardBytes?: number;
  force?: boolean;
}

export function registerExport(program: Command): void {
  program
    .command('export <out>')
    .description('export a built mixture for other trainers: LLaVA JSON + images, or WebDataset tar shards')
    .requiredOption('--format <format>', 'llava | webdataset', (v) => {
      if (v !== 'llava' && v !== 'webdataset')
        throw new InvalidArgumentError(`--format must be llava or webdataset, got "${v}"`);
      return v;
    })
    .requiredOption('--dest <dir>', 'local destination folder')
    .option('--json-name <name>', 'llava: name of the JSON file', 'mixture.json')
    .option(
      '--samples-per-shard <n>',
      'webdataset: samples per tar shard',
      intFlag('--samples-per-shard', 1),
      1000,
    )
    .option(
      '--max-shard-bytes <n>',
      'webdataset: start a new shard past this size',
      intFlag('--max-shard-bytes', 1),
    )
    .option(
      '--force',
      'export into a --dest folder that holds files this export did not write (they are kept)',
    )
    .action(async (out: string, flags: ExportFlags) => {
      const { normaliseUri } = await import('../../core/storage/index.ts');
      const uri = normaliseUri(out);
      const progress = (n: number, total: number) => process.stderr.write(`\rexported ${n}/${total} samples`);
      if (flags.format === 'llava') {
        const { exportLlava } = await import('../../train-bridge/export/llava.ts');
        const r = await exportLlava(uri, {
          dest: flags.dest,
          jsonName: flags.jsonName,
          onProgress: progress,
          force: flags.force,
        });
        process.stderr.write('\n');
        process.stdout.write(`${r.samples} samples, ${r.images} images → ${r.json}\n`);
      } else {
        const { exportWebDataset } = await import('../../train-bridge/export/webdataset.ts');
        const r = await exportWebDataset(uri, {
          dest: flags.dest,
          samplesPerShard: flags.samplesPerShard,
          maxShardBytes: flags.maxShardBytes,
          onProgress: progress,
          force: flags.force,
        });
        process.stderr.write('\n');
        process.stdout.write(`${r.samples} samples → ${r.shards.length} tar shards in ${flags.dest}\n`);
      }
    });
}
