// The paper's training stages as presets (FastVLM supplementary; DESIGN.md) and per-model defaults of the
// alignment heads, resolved with user overrides into the one RunConfig a run (and its checkpoints) carries.
import { z } from 'zod';
import { SpecError } from '../../core/errors.ts';
import { modelConfig } from '../model/fastvithd.ts';
import { fastVLMConfig, isFastVLMModel } from '../model/fastvlm.ts';
import type { HeadsConfig } from './objective.ts';

export interface StagePreset {
  description: string;
  /** Stage 1 trains the projector (and our text tower, t, b) only; the encoder is frozen. */
  trainEncoder: boolean;
  /** Stage 1 freezes the language model too (gradients still flow through it to the projector). */
  trainLm: boolean;
  lr: number;
  /** Images per optimiser update (reached with gradient accumulation when micro-batches are smaller). */
  batchSize: number;
  warmupRatio: number;
  /** LLaVA trains with weight decay 0 and clips the gradient norm at 1 (HF Trainer's default). */
  weightDecay: number;
  maxGradNorm: number;
}

const common = { warmupRatio: 0.03, weightDecay: 0, maxGradNorm: 1 };

export const STAGE_PRESETS: Readonly<Record<string, StagePreset>> = {
  stage1: {
    description: 'projector only, encoder frozen',
    trainEncoder: false,
    trainLm: false,
    lr: 1e-3,
    batchSize: 256,
    ...common,
  },
  'stage1.5': {
    description: 'full model on dense captions',
    trainEncoder: true,
    trainLm: true,
    lr: 2e-5,
    batchSize: 128,
    ...common,
  },
  stage2: {
    description: 'full model on instruction data',
    trainEncoder: true,
    trainLm: true,
    lr: 2e-5,
    batchSize: 128,
    ...common,
  },
};

interface ModelDefaults {
  resolution: number;
  heads: HeadsConfig;
}

/** FastViTHD trains at 1024² with FastVLM-0.5B's LLM width 896; the tiny config is sized for lavapipe tests. */
const MODEL_DEFAULTS: Readonly<Record<string, ModelDefaults>> = {
  fastvithd: {
    resolution: 1024,
    heads: { projectorDim: 896, text: { buckets: 65536, embedDim: 512, maxTokens: 128 } },
  },
  'fastvithd-tiny': {
    resolution: 128,
    heads: { projectorDim: 64, text: { buckets: 4096, embedDim: 64, maxTokens: 64 } },
  },
};

export const RunConfigSchema = z.strictObject({
  model: z.string(),
  preset: z.string(),
  resolution: z.number().int().positive(),
  /** Optimiser updates in the run (the schedule's length). */
  steps: z.number().int().positive(),
  batchSize: z.number().int().positive(),
  /** Images per forward/backward pass; batchSize / microBatch passes are accumulated per update. */
  microBatch: z.number().int().positive(),
  /**
   * `lm`: FastVLM's next-token objective through the Qwen2 decoder (fastvlm-* models); `contrastive`: the SigLIP
   * image–caption objective of FastViTHD alone (fastvithd* models). Checkpoints from before `lm` existed are contrastive.
   */
  objective: z.enum(['lm', 'contrastive']).default('contrastive'),
  trainEncoder: z.boolean(),
  trainLm: z.boolean().default(false),
  lr: z.number().positive(),
  warmupRatio: z.number().min(0).lt(1),
  weightDecay: z.number().min(0),
  maxGradNorm: z.number().positive(),
  /** Keys weight initialisation (nothing else is random: the data order is the loader's keyed order). */
  seed: z.number().int(),
  /** The contrastive objective's heads. */
  heads: z
    .strictObject({
      projectorDim: z.number().int().positive(),
      text: z.strictObject({
        buckets: z.number().int().positive(),
        embedDim: z.number().int().positive(),
        maxTokens: z.number().int().positive(),
      }),
    })
    .optional(),
  /** The LM objective's text path: model_max_length and where `<image>` goes (docs/training.md). */
  text: z
    .strictObject({
      maxLength: z.number().int().positive(),
      imageTokenPosition: z.enum(['data', 'front']),
      /**
       * Sequence packing: each row of a micro-batch is a pack of whole samples of at most `capacity` tokens
       * (first-fit over `window` samples of the keyed order); batch sizes then count packs.
       */
      pack: z
        .strictObject({ capacity: z.number().int().positive(), window: z.number().int().positive() })
        .optional(),
    })
    .optional(),
});

export type RunConfig = z.infer<typeof RunConfigSchema>;

export interface RunOverrides {
  resolution?: number;
  steps?: number;
  batchSize?: number;
  microBatch?: number;
  lr?: number;
  seed?: number;
  maxLength?: number;
  imageTokenPosition?: 'data' | 'front';
  pack?: { capacity: number; window: number };
}

/** LLaVA's training scripts cut conversations at model_max_length 2048 tokens (images counted expanded). */
export const DEFAULT_MAX_LENGTH = 2048;

/** The contrastive heads of a run config (present for every contrastive run). */
export function contrastiveHeads(config: RunConfig): HeadsConfig {
  if (!config.heads)
    throw new Error(`run config of ${config.model}: no contrastive heads (objective ${config.objective})`);
  return config.heads;
}

/**
 * The input resolutions FastViTHD accepts: positive multiples of 64 (its total downsampling). `mixforge train` and
 * `mixforge model info` both validate `--resolution` with this, so they accept and reject the same values.
 */
export function checkResolution(value: number | string): number {
  const resolution = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(resolution) || resolution <= 0) {
    throw new SpecError('--resolution', '', `expected a positive integer, got "${value}"`);
  }
  if (resolution % 64 !== 0) {
    throw new SpecError(
      '--resolution',
      '',
      `${resolution} is not a multiple of 64 (the encoder's downsampling)`,
    );
  }
  return resolution;
}

/**
 * A resumed run made longer: `steps` is the schedule's total, so the warmup + cosine schedule is recomputed over the
 * new total and the run continues on that curve from the update it stopped at (lr jumps up from the old curve's
 * tail; warmup is ceil(ratio · new total), so if that reaches past the stop, lr ramps on from there). Shortening is
 * refused: the updates already done followed a longer schedule than the one asked for.
 */
export function extendRun(config: RunConfig, done: number, steps: number | undefined): RunConfig {
  if (steps === undefined || steps === config.steps) return config;
  if (steps < config.steps) {
    throw new SpecError(
      '--steps',
      '',
      `${steps} is shorter than the checkpoint's run of ${config.steps} updates (${done} done); a resumed run can only be extended`,
    );
  }
  return RunConfigSchema.parse({ ...config, steps });
}

/** Preset + model defaults + overrides; `defaultSteps` (one epoch) applies when steps is not given. */
export function resolveRunConfig(
  model: string,
  preset: string,
  overrides: RunOverrides,
  defaultSteps: (batchSize: number) => number,
): RunConfig {
  const lm = isFastVLMModel(model);
  if (!lm) modelConfig(model, '--model');
  const stage = Object.hasOwn(STAGE_PRESETS, preset) ? STAGE_PRESETS[preset] : undefined;
  if (!stage) {
    throw new SpecError(
      '--preset',
      '',
      `unknown preset "${preset}" (known: ${Object.keys(STAGE_PRESETS).join(', ')})`,
    );
  }
  const defaults = lm ? undefined : MODEL_DEFAULTS[model];
  const batchSize = overrides.batchSize ?? stage.batchSize;
  const microBatch = overrides.microBatch ?? batchSize;
  if (batchSize % microBatch !== 0) {
    throw new SpecError('--micro-batch', '', `${microBatch} does not divide the batch size ${batchSize}`);
  }
  const resolution = checkResolution(
    overrides.resolution ?? (lm ? fastVLMConfig(model).resolution : defaults!.resolution),
  );
  return RunConfigSchema.parse({
    model,
    preset,
    resolution,
    steps: overrides.steps ?? Math.max(1, defaultSteps(batchSize)),
    batchSize,
    microBatch,
    objective: lm ? 'lm' : 'contrastive',
    trainEncoder: stage.trainEncoder,
    trainLm: lm && stage.trainLm,
    lr: overrides.lr ?? stage.lr,
    warmupRatio: stage.warmupRatio,
    weightDecay: stage.weightDecay,
    maxGradNorm: stage.maxGradNorm,
    seed: overrides.seed ?? 0,
    heads: defaults?.heads,
    text: lm
      ? {
          maxLength: overrides.maxLength ?? DEFAULT_MAX_LENGTH,
          imageTokenPosition: overrides.imageTokenPosition ?? 'data',
          ...(overrides.pack && { pack: overrides.pack }),
        }
      : undefined,
  });
}
