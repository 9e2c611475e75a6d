// `mixforge demo`: generate the bundled demo data (if missing) and run the main job on it.
import type { Command } from 'commander';
import { progressSink } from '../progress.ts';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('write demo data in every source format (if missing) and build a mixture from it')
    .option('--data <dir>', 'where the demo data lives', 'demo-data')
    .option('--out <dir>', 'where the built mixture goes', 'demo-out')
    .action(async (opts: { data: string; out: string }) => {
      const { runDemo } = await import('../../demo/run.ts');
      const progress = progressSink({ json: false, tty: Boolean(process.stderr.isTTY) });
      await runDemo({ ...opts, onEvent: progress.sink }).finally(() => progress.stop());
    });
}
