// `mixforge model info <name>`: parameter counts, output tokens/channels and FLOPs of a model config,
// computed from its module tree (no weights are allocated).
import type { Command } from 'commander';

export function registerModel(program: Command): void {
  const model = program.command('model').description('inspect model configurations (FastViTHD, FastVLM)');
  model
    .command('info <name>')
    .description('parameters (train and reparameterised form), output tokens and channels, FLOPs per image')
    .option('--resolution <R>', 'square input resolution in pixels (a multiple of 64)', '1024')
    .option('--json', 'print one JSON object')
    .action(async (name: string, opts: { resolution: string; json?: boolean }) => {
      // The same check as `mixforge train --resolution`: what one rejects, so does the other.
      const { checkResolution } = await import('../../train-bridge/train/presets.ts');
      const resolution = checkResolution(opts.resolution);
      const { FastVLM, fastVLMConfig, isFastVLMModel } = await import('../../train-bridge/model/fastvlm.ts');
      const { modelInfo } = await import('../../train-bridge/model/flops.ts');
      if (isFastVLMModel(name)) {
        // A whole FastVLM: each part's parameters (train form of the tower), and the tower's tokens at R².
        const config = fastVLMConfig(name);
        const counts = new FastVLM(config).parameterCounts();
        const vision = modelInfo(config.vision, resolution);
        const out = {
          model: name,
          resolution,
          params: counts,
          imageTokens: vision.tokens,
          visionFlops: vision.flops,
        };
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(out)}\n`);
          return;
        }
        const n = (x: number) => x.toLocaleString('en-US');
        process.stdout.write(
          [
            `${name} at ${resolution}×${resolution}`,
            `  vision tower (${config.vision.name}, train form): ${n(counts.vision)}`,
            `  projector (mlp2x_gelu ${vision.channels} → ${config.lm.hidden_size}):   ${n(counts.projector)}`,
            `  language model (Qwen2, ${config.lm.num_hidden_layers} layers):    ${n(counts.lm)}`,
            `  total:                                 ${n(counts.total)}`,
            `  image tokens per image: ${vision.tokens}`,
            '',
          ].join('\n'),
        );
        return;
      }
      const info = modelInfo(name, resolution);
      if (opts.json) {
        const { params, paramsInference, tokens, channels, flops, flopsInference } = info;
        process.stdout.write(
          `${JSON.stringify({ model: info.model, resolution, params, paramsInference, tokens, channels, flops, flopsInference })}\n`,
        );
        return;
      }
      const n = (x: number) => x.toLocaleString('en-US');
      const g = (x: number) =>
        x >= 1e9 ? `${(x / 1e9).toFixed(2)} GFLOPs` : `${(x / 1e6).toFixed(2)} MFLOPs`;
      process.stdout.write(
        [
          `${info.model} at ${resolution}×${resolution}`,
          `  parameters (train form, multi-branch): ${n(info.params)}`,
          `  parameters (reparameterised):          ${n(info.paramsInference)}`,
          `  output: ${info.tokens} tokens × ${info.channels} channels`,
          `  FLOPs per image (2 × multiply-adds of convs, linears, attention matmuls):`,
          `    train form ${g(info.flops)}, reparameterised ${g(info.flopsInference)}`,
          '',
        ].join('\n'),
      );
    });
}
