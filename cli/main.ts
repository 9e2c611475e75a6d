// The `mixforge` command: thin. Each subcommand lives in cli/commands/<name>.ts and calls the library.
import { Command } from 'commander';
import { registerBuild } from './commands/build.ts';
import { registerCaption } from './commands/caption.ts';
import { registerDemo } from './commands/demo.ts';
import { registerExport } from './commands/export.ts';
import { registerGpu } from './commands/gpu.ts';
import { registerModel } from './commands/model.ts';
import { registerSources } from './commands/sources.ts';
import { registerStream } from './commands/stream.ts';
import { registerTokens } from './commands/tokens.ts';
import { registerTrain } from './commands/train.ts';
import { registerWorker } from './commands/worker.ts';
import { explainError } from './explain-error.ts';

const program = new Command()
  .name('mixforge')
  .description('Reproducible FastVLM training mixtures, streamed into a WebGPU FastViTHD training loop')
  .version('0.1.0')
  .showHelpAfterError();

// One line per command family; keep alphabetical.
registerBuild(program);
registerCaption(program);
registerDemo(program);
registerExport(program);
registerGpu(program);
registerModel(program);
registerSources(program);
registerStream(program);
registerTokens(program);
registerTrain(program);
registerWorker(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`mixforge: ${explainError(err)}\n`);
  process.exit(1);
});
