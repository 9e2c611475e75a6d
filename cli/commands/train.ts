// `mixforge train <manifest>`: FastVLM's next-token objective (FastViTHD → projector → Qwen2) on the WebGPU engine, or
// the SigLIP contrastive objective of FastViTHD alone (--objective contrastive), streamed from a built mixture, with a
// memory check up front, a progress line, JSON-lines metrics, a loss plot and checkpoints.
import type { Command } from 'commander';
import { SpecError } from '../../core/errors.ts';
import { intFlag } from '../flags.ts';

interface TrainFlags {
  objective: string;
  model?: string;
  initFrom?: string;
  maxLength?: number;
  imageTokenPosition: string;
  preset: string;
  resolution?: string;
  steps?: number;
  batchSize?: number;
  microBatch?: number;
  lr?: string;
  seed?: string;
  checkpointDir: string;
  saveEvery: number;
  resume?: boolean;
  weights?: string;
  randomEncoder?: boolean;
  adapter?: string;
  groupByModalityLength?: boolean;
  pack?: number;
  packWindow: number;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

export function registerTrain(program: Command): void {
  program
    .command('train <manifest>')
    .description(
      'train FastVLM (FastViTHD + projector + Qwen2) on a built mixture, next-token loss on the answers',
    )
    .option('--objective <o>', 'lm (FastVLM next-token) or contrastive (SigLIP, FastViTHD only)', 'lm')
    .option('--model <name>', 'lm: fastvlm-0.5b or fastvlm-tiny; contrastive: fastvithd or fastvithd-tiny')
    .option(
      '--init-from <dir>',
      'lm: start from a FastVLM or Qwen2 checkpoint folder (config.json + safetensors)',
    )
    .option(
      '--max-length <N>',
      'lm: model_max_length in tokens, images expanded (default 2048)',
      intFlag('--max-length', 1),
    )
    .option(
      '--image-token-position <p>',
      'lm: data (keep <image> where the sample has it) or front (move it first, as the reference does)',
      'data',
    )
    .option(
      '--group-by-modality-length',
      'lm: LLaVA’s group_by_modality_length order (micro-batches of one modality and similar length); needs ' +
        '`mixforge tokens <manifest> --resolution R` first',
    )
    .option(
      '--pack <N>',
      'lm: pack whole samples into rows of at most N tokens (first-fit over the keyed order; attention and RoPE ' +
        'positions restart per sample); --batch-size and --micro-batch then count packs. Needs ' +
        '`mixforge tokens <manifest> --resolution R` first',
      intFlag('--pack', 1),
    )
    .option(
      '--pack-window <W>',
      'lm: samples of the keyed order the packer looks ahead over',
      intFlag('--pack-window', 1),
      64,
    )
    .option('--preset <stage>', 'stage1 (projector only), stage1.5 or stage2 (full model)', 'stage1')
    // No commander parser: checkResolution is the one `model info` uses too, so both reject the same values.
    .option('--resolution <R>', 'square input resolution (multiple of 64; default: the model’s)')
    .option(
      '--steps <N>',
      'optimiser updates (default: one epoch of the mixture); with --resume, a larger N extends the run',
      intFlag('--steps', 1),
    )
    .option(
      '--batch-size <B>',
      'images per update (default: the preset’s, 256 or 128)',
      intFlag('--batch-size', 1),
    )
    .option(
      '--micro-batch <M>',
      'images per forward pass; B/M passes are accumulated (default: B)',
      intFlag('--micro-batch', 1),
    )
    .option('--lr <x>', 'peak learning rate (default: the preset’s)')
    .option('--seed <n>', 'seed of the weight initialisation', '0')
    .option('--checkpoint-dir <D>', 'checkpoints, metrics.jsonl and loss.png go here', 'checkpoints')
    .option(
      '--save-every <N>',
      'checkpoint every N updates (and always at the end)',
      intFlag('--save-every', 1),
      500,
    )
    .option('--resume', 'continue from the latest checkpoint in --checkpoint-dir')
    .option(
      '--weights <file>',
      'contrastive: start the encoder from these safetensors (published FastViTHD weights)',
    )
    .option(
      '--random-encoder',
      'allow stage1 without --weights (a frozen random encoder: for smoke tests only)',
    )
    .option('--adapter <name>', 'require a WebGPU adapter whose name contains this')
    .action(async (manifest: string, flags: TrainFlags, cmd: Command) => {
      const { Engine } = await import('../../train-bridge/gpu/engine.ts');
      const { lavapipeThreadsFor } = await import('../../train-bridge/gpu/device.ts');
      const { modelInfo } = await import('../../train-bridge/model/flops.ts');
      const { StreamingDataset } = await import('../../train-bridge/loader/dataset.ts');
      const { latestCheckpoint, readTrainerState } = await import('../../train-bridge/train/checkpoint.ts');
      const { Trainer } = await import('../../train-bridge/train/loop.ts');
      const { LmTrainer, packedDataset } = await import('../../train-bridge/train/lm-loop.ts');
      const { memoryProblem } = await import('../../train-bridge/train/memory-plan.ts');
      const { fastVLMConfig, isFastVLMModel } = await import('../../train-bridge/model/fastvlm.ts');
      const { totalmem } = await import('node:os');
      const { MetricsLog } = await import('../../train-bridge/train/metrics.ts');
      const { writeLossPlot } = await import('../../train-bridge/train/plot.ts');
      const { checkResolution, extendRun, resolveRunConfig } = await import(
        '../../train-bridge/train/presets.ts'
      );
      const { cosineWithWarmup } = await import('../../train-bridge/train/schedule.ts');
      const { onStopSignals } = await import('../signals.ts');
      const { join } = await import('node:path');

      const lr = flags.lr === undefined ? undefined : Number(flags.lr);
      if (lr !== undefined && !(lr > 0))
        throw new SpecError('--lr', '', `expected a positive number, got "${flags.lr}"`);
      const seed = Number(flags.seed);
      if (!Number.isInteger(seed))
        throw new SpecError('--seed', '', `expected an integer, got "${flags.seed}"`);
      const saveEvery = flags.saveEvery;
      if (flags.objective !== 'lm' && flags.objective !== 'contrastive')
        throw new SpecError('--objective', '', `expected lm or contrastive, got "${flags.objective}"`);
      const lm = flags.objective === 'lm';
      if (flags.groupByModalityLength && !lm)
        throw new SpecError(
          '--group-by-modality-length',
          '',
          'orders conversations for the lm objective only',
        );
      if (flags.pack !== undefined && !lm)
        throw new SpecError('--pack', '', 'packs conversations for the lm objective only');
      if (flags.pack !== undefined && flags.groupByModalityLength)
        throw new SpecError(
          '--pack',
          '',
          'packing reads the keyed order; it does not combine with --group-by-modality-length',
        );
      const model = flags.model ?? (lm ? 'fastvlm-0.5b' : 'fastvithd');
      if (lm !== isFastVLMModel(model)) {
        throw new SpecError(
          '--model',
          '',
          lm
            ? `"${model}" is not a FastVLM (fastvlm-0.5b, fastvlm-tiny); for FastViTHD alone pass --objective contrastive`
            : `the contrastive objective trains FastViTHD alone (fastvithd, fastvithd-tiny), not "${model}"`,
        );
      }
      if (flags.imageTokenPosition !== 'data' && flags.imageTokenPosition !== 'front')
        throw new SpecError(
          '--image-token-position',
          '',
          `expected data or front, got "${flags.imageTokenPosition}"`,
        );
      const overrides = {
        maxLength: flags.maxLength,
        imageTokenPosition: flags.imageTokenPosition as 'data' | 'front',
        resolution: flags.resolution === undefined ? undefined : checkResolution(flags.resolution),
        steps: flags.steps,
        batchSize: flags.batchSize,
        microBatch: flags.microBatch,
        lr,
        seed,
        pack: flags.pack === undefined ? undefined : { capacity: flags.pack, window: flags.packWindow },
      };
      const dir = flags.checkpointDir;
      let resumeFrom: string | undefined;
      let config: Awaited<ReturnType<typeof readTrainerState>>['config'];
      let extendTo: number | undefined;
      if (flags.resume) {
        resumeFrom = await latestCheckpoint(dir);
        if (!resumeFrom) throw new SpecError('--resume', '', `no checkpoint in ${dir} (no latest.json)`);
        const state = await readTrainerState(resumeFrom);
        config = state.config;
        if (overrides.steps !== undefined && overrides.steps !== config.steps) {
          // A longer run: the schedule's total changes, so its curve is recomputed (extendRun says how).
          const longer = extendRun(config, state.step, overrides.steps);
          const lrWas = cosineWithWarmup(state.step, config.steps, config.lr, config.warmupRatio);
          const lrNow = cosineWithWarmup(state.step, longer.steps, longer.lr, longer.warmupRatio);
          process.stderr.write(
            `extending the run from ${config.steps} to ${longer.steps} updates: the warmup + cosine learning-rate ` +
              `schedule is recomputed over ${longer.steps} updates and continues from update ${state.step} ` +
              `(lr there ${lrNow.toExponential(2)} instead of ${lrWas.toExponential(2)})\n`,
          );
          extendTo = longer.steps;
          config = longer;
        }
        // The data order and the model depend on these: a resumed run cannot change them.
        const given: Array<[string, string, unknown, unknown]> = [
          ['--model', 'model', model, config.model],
          ['--preset', 'preset', flags.preset, config.preset],
          ['--resolution', 'resolution', overrides.resolution, config.resolution],
          ['--batch-size', 'batchSize', overrides.batchSize, config.batchSize],
          ['--micro-batch', 'microBatch', overrides.microBatch, config.microBatch],
          ['--lr', 'lr', overrides.lr, config.lr],
          ['--pack', 'pack', flags.pack, config.text?.pack?.capacity],
          ['--pack-window', 'packWindow', flags.packWindow, config.text?.pack?.window],
        ];
        for (const [flag, option, value, stored] of given) {
          if (cmd.getOptionValueSource(option) === 'cli' && value !== stored) {
            throw new SpecError(flag, '', `${value} differs from the checkpoint's ${stored} (${resumeFrom})`);
          }
        }
      } else {
        // One epoch: samples (or packs) per update.
        let epochRows: number;
        if (overrides.pack) {
          const probe = packedDataset(
            manifest,
            overrides.pack,
            overrides.resolution ?? fastVLMConfig(model).resolution,
          );
          await probe.open();
          // The epoch's packing up front (rank 0 of 1 takes every pack): what padding would have wasted.
          let samples = 0;
          let tokens = 0;
          epochRows = 0;
          for (const p of probe.rankRefs()) {
            epochRows++;
            samples += p.refs.length;
            tokens += p.tokens;
          }
          const pack = overrides.pack;
          process.stderr.write(
            `packing epoch 0: ${samples} samples into ${epochRows} packs of ≤ ${pack.capacity} tokens, ` +
              `${((100 * tokens) / (epochRows * pack.capacity)).toFixed(1)}% of their positions used (window ${pack.window})\n`,
          );
        } else {
          const probe = new StreamingDataset(manifest);
          await probe.open();
          epochRows = probe.total;
        }
        config = resolveRunConfig(model, flags.preset, overrides, (b) => Math.floor(epochRows / b));
        const weightsFlag = lm ? '--init-from' : '--weights';
        if (!config.trainEncoder && !(lm ? flags.initFrom : flags.weights)) {
          const why =
            `${config.preset} freezes the encoder, and without ${weightsFlag} it stays at its random initialisation: ` +
            'a random encoder maps every image to nearly the same features, so the run would learn nothing about images';
          if (!flags.randomEncoder) {
            throw new SpecError(
              weightsFlag,
              '',
              `${why}. Pass ${lm ? '--init-from <fastvlm checkpoint folder>' : '--weights <fastvithd.safetensors>'}, ` +
                'or --preset stage1.5 / stage2 to train the encoder too, or --random-encoder to run anyway (smoke tests)',
            );
          }
          process.stderr.write(`WARNING: ${why} (--random-encoder given)\n`);
        }
      }
      // Training the encoder updates BatchNorm statistics, which need two values per channel: FastViTHD's last
      // stage is (R/64)² pixels, so at 64² one image per pass is not enough.
      const lastStage = (config.resolution / 64) ** 2;
      if (config.trainEncoder && config.microBatch * lastStage < 2)
        throw new SpecError(
          '--micro-batch',
          '',
          `at ${config.resolution}² FastViTHD's last stage is ${config.resolution / 64}×${config.resolution / 64}: ` +
            `training its BatchNorm needs at least ${Math.ceil(2 / lastStage)} images per pass (--micro-batch ` +
            `${Math.ceil(2 / lastStage)}, or a larger --resolution)`,
        );

      const eng = await Engine.create({
        adapterName: flags.adapter,
        log: (line) => process.stderr.write(`${line}\n`),
        // A small encoder pass runs faster on lavapipe without its worker pool (device.ts); the lm objective's
        // decoder is not counted here, so it keeps the default.
        lavapipeThreads:
          config.objective === 'contrastive'
            ? lavapipeThreadsFor(modelInfo(config.model, config.resolution).flops * config.microBatch)
            : undefined,
      });
      try {
        // Before any allocation: a run that cannot fit says so in one line, with the change that makes it fit.
        const limits = eng.device.limits;
        const problem = memoryProblem(config, {
          maxBufferSize: limits.maxBufferSize,
          maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
          totalBytes: eng.ctx.adapter.isCpu ? totalmem() : undefined,
        });
        if (problem) throw new SpecError('--micro-batch', '', problem);
        const log = (line: string) => process.stderr.write(`${line}\n`);
        const trainer =
          config.objective === 'lm'
            ? await LmTrainer.create(eng, {
                manifest,
                config,
                resumeFrom,
                extendTo,
                initFrom: flags.initFrom,
                log,
                // The reference groups megabatches of micro-batch × (ranks × accumulation) samples.
                loader: flags.groupByModalityLength
                  ? {
                      groupByModalityLength: {
                        batchSize: config.microBatch,
                        worldSize: config.batchSize / config.microBatch,
                        resolution: config.resolution,
                      },
                    }
                  : undefined,
              })
            : await Trainer.create(eng, {
                manifest,
                config,
                resumeFrom,
                extendTo,
                encoderWeights: flags.weights,
              });
        const metrics = new MetricsLog(join(dir, 'metrics.jsonl'));
        const history = await metrics.open(resumeFrom ? trainer.step : 0);
        const c = trainer.config;
        const packing = c.text?.pack;
        process.stderr.write(
          `training ${c.model} (${c.objective} objective, ${c.preset}${c.trainEncoder ? ', full model' : ', projector only'}) ` +
            `at ${c.resolution}² for ${c.steps} updates of ${c.batchSize} ${packing ? `packs of ≤ ${packing.capacity} tokens` : 'samples'} (${c.batchSize / c.microBatch} × ${c.microBatch})` +
            `${resumeFrom ? `, resuming at update ${trainer.step}` : ''}\n`,
        );
        const tty = Boolean(process.stderr.isTTY);
        const recent: number[] = [];
        const plotTitle = `${c.model} ${c.preset} — ${c.objective === 'lm' ? 'next-token cross-entropy' : 'SigLIP loss'}`;
        const points = history.map((m) => ({ step: m.step, loss: m.loss }));
        // Packing efficiency: real tokens over the positions the packs offered, this run's updates.
        let packed = { tokens: 0, capacity: 0 };
        // Ctrl-C (or SIGTERM): finish the update in progress, write a checkpoint, exit 130. A second one quits at once.
        const stop = new AbortController();
        const removeSignals = onStopSignals((signal, n) => {
          if (n > 1) {
            process.stderr.write(`\n${signal} again: quitting without a checkpoint\n`);
            process.exit(130);
          }
          process.stderr.write(
            `\n${signal}: stopping after update ${trainer.step + 1} to write a checkpoint (again to quit without one)\n`,
          );
          stop.abort();
        });
        await trainer.run({
          checkpointDir: dir,
          saveEvery,
          metrics,
          signal: stop.signal,
          onStep: (m) => {
            points.push({ step: m.step, loss: m.loss });
            recent.push(m.seconds);
            if (recent.length > 20) recent.shift();
            const perStep = recent.reduce((a, b) => a + b, 0) / recent.length;
            const fill =
              m.packCapacity === undefined || m.tokens === undefined
                ? ''
                : `pack ${((100 * m.tokens) / m.packCapacity).toFixed(1)}%  `;
            if (m.packCapacity !== undefined && m.tokens !== undefined)
              packed = { tokens: packed.tokens + m.tokens, capacity: packed.capacity + m.packCapacity };
            const line =
              `step ${m.step}/${c.steps}  loss ${m.loss.toFixed(4)}  ${m.imagesPerSec.toFixed(1)} img/s  ` +
              `${m.tokensPerSec === undefined ? '' : `${m.tokensPerSec.toFixed(0)} tok/s  `}${fill}` +
              `lr ${m.lr.toExponential(2)}  |g| ${m.gradNorm.toFixed(3)}  epoch ${m.epoch}  ETA ${duration((c.steps - m.step) * perStep)}`;
            process.stderr.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
            if (m.step % saveEvery === 0) void writeLossPlot(join(dir, 'loss'), points, plotTitle);
          },
        });
        removeSignals();
        if (tty) process.stderr.write('\n');
        await writeLossPlot(join(dir, 'loss'), points, plotTitle);
        const latest = await latestCheckpoint(dir);
        if (stop.signal.aborted && trainer.step < c.steps) {
          process.stdout.write(
            `interrupted at update ${trainer.step} of ${c.steps}; checkpoint ${latest}\n` +
              `continue with: mixforge train ${manifest} --checkpoint-dir ${dir} --resume\n`,
          );
          process.exitCode = 130;
        } else {
          process.stdout.write(`done: ${trainer.step} updates; checkpoint ${latest}\n`);
        }
        if (packed.capacity > 0)
          process.stdout.write(
            `packing: ${packed.tokens} tokens in ${packed.capacity} pack positions (${((100 * packed.tokens) / packed.capacity).toFixed(1)}% used)\n`,
          );
        process.stdout.write(`metrics ${join(dir, 'metrics.jsonl')}, loss curve ${join(dir, 'loss.png')}\n`);
        trainer.dispose();
      } finally {
        eng.destroy();
      }
    });
}
