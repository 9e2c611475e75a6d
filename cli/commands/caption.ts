// `mixforge caption <checkpoint> <image…> [--prompt Q]`: what a trained FastVLM says about images — greedy decoding
// with a KV cache on the WebGPU engine, one line per image ("<image path>\t<answer>").
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { intFlag } from '../flags.ts';

interface CaptionFlags {
  prompt?: string;
  maxNewTokens: number;
  resolution?: number;
  adapter?: string;
  json?: boolean;
}

export function registerCaption(program: Command): void {
  program
    .command('caption <checkpoint> <images...>')
    .description('answer a prompt about each image with a FastVLM checkpoint (greedy, KV cache, on WebGPU)')
    .option('--prompt <Q>', 'the question; <image> marks where the image goes (default: before it)')
    .option('--max-new-tokens <N>', 'stop after N tokens', intFlag('--max-new-tokens', 1), 256)
    .option('--resolution <R>', 'input resolution (default: the checkpoint’s)', intFlag('--resolution', 64))
    .option('--adapter <name>', 'require a WebGPU adapter whose name contains this')
    .option('--json', 'one JSON object per image: {image, ids, text}')
    .action(async (checkpoint: string, images: string[], flags: CaptionFlags) => {
      const { Engine } = await import('../../train-bridge/gpu/engine.ts');
      const { Captioner, DEFAULT_PROMPT } = await import('../../train-bridge/train/caption.ts');
      const eng = await Engine.create({
        adapterName: flags.adapter,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      try {
        const captioner = await Captioner.open(eng, checkpoint, { resolution: flags.resolution });
        for (const path of images) {
          const bytes = new Uint8Array(await readFile(path));
          const r = await captioner.caption([bytes], flags.prompt ?? DEFAULT_PROMPT, flags.maxNewTokens);
          process.stdout.write(
            flags.json
              ? `${JSON.stringify({ image: path, ids: r.ids, text: r.text })}\n`
              : `${path}\t${r.text.replaceAll('\n', ' ')}\n`,
          );
        }
        await captioner.close();
      } finally {
        eng.destroy();
      }
    });
}
