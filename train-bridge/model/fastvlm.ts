// FastVLM (LlavaQwen2ForCausalLM) as a module tree whose names are the published checkpoints' keys:
// model.{embed_tokens,layers,norm} (Qwen2), model.vision_tower.vision_tower.model.* (FastViTHD), model.mm_projector.*.
import { SpecError } from '../../core/errors.ts';
import { FastViTHD, type FastViTHDConfig, modelConfig } from './fastvithd.ts';
import { fillTruncNormal, initFastViTHD, TensorRandom } from './init.ts';
import { Linear } from './layers.ts';
import { countParameters, Module } from './module.ts';
import { FastVLMProjector, initProjector } from './projector.ts';
import { initQwen2, type Qwen2Config, Qwen2Model, qwen2Config } from './qwen2.ts';

export interface FastVLMConfig {
  name: string;
  vision: FastViTHDConfig;
  lm: Qwen2Config;
  /** The resolution the model trains at unless overridden (image tokens = (R/64)²). */
  resolution: number;
}

export const FASTVLM_CONFIGS: Readonly<Record<string, FastVLMConfig>> = {
  'fastvlm-0.5b': {
    name: 'fastvlm-0.5b',
    vision: modelConfig('fastvithd'),
    lm: qwen2Config('qwen2-0.5b'),
    resolution: 1024,
  },
  'fastvlm-tiny': {
    name: 'fastvlm-tiny',
    vision: modelConfig('fastvithd-tiny'),
    lm: qwen2Config('qwen2-tiny'),
    resolution: 64,
  },
};

export function isFastVLMModel(name: string): boolean {
  return Object.hasOwn(FASTVLM_CONFIGS, name);
}

export function fastVLMConfig(name: string, where = 'model name'): FastVLMConfig {
  const c = Object.hasOwn(FASTVLM_CONFIGS, name) ? FASTVLM_CONFIGS[name] : undefined;
  if (!c)
    throw new SpecError(
      where,
      '',
      `unknown model "${name}" (known: ${Object.keys(FASTVLM_CONFIGS).join(', ')})`,
    );
  return c;
}

/** `vision_tower.vision_tower.model`: the reference wraps MobileCLIP's image encoder twice. */
class Wrapper extends Module {
  readonly kind = 'VisionTowerWrapper';
  constructor(name: string, inner: Module) {
    super();
    this.registerModule(name, inner);
  }
}

/** LlavaQwen2Model: Qwen2Model plus the vision tower and the projector (registered after, as LLaVA does). */
export class LlavaQwen2Model extends Qwen2Model {
  override readonly kind = 'LlavaQwen2Model';
  readonly visionTower: FastViTHD;
  readonly mmProjector: FastVLMProjector;
  constructor(config: FastVLMConfig, opts: { inferenceMode?: boolean } = {}) {
    super(config.lm);
    this.visionTower = new FastViTHD(config.vision, { inferenceMode: opts.inferenceMode });
    this.registerModule('vision_tower', new Wrapper('vision_tower', new Wrapper('model', this.visionTower)));
    this.mmProjector = this.registerModule(
      'mm_projector',
      new FastVLMProjector(this.visionTower.outChannels, config.lm.hidden_size),
    );
  }
}

export const VISION_TOWER_PREFIX = 'model.vision_tower.vision_tower.model.';

export class FastVLM extends Module {
  readonly kind = 'LlavaQwen2ForCausalLM';
  readonly model: LlavaQwen2Model;
  /** Only when the config unties it; a tied model uses model.embed_tokens.weight. */
  readonly lmHead: Linear | undefined;
  constructor(
    readonly config: FastVLMConfig,
    opts: { inferenceMode?: boolean } = {},
  ) {
    super();
    this.model = this.registerModule('model', new LlavaQwen2Model(config, opts));
    this.lmHead = config.lm.tie_word_embeddings
      ? undefined
      : this.registerModule('lm_head', new Linear(config.lm.hidden_size, config.lm.vocab_size, false));
  }

  get vision(): FastViTHD {
    return this.model.visionTower;
  }

  get projector(): FastVLMProjector {
    return this.model.mmProjector;
  }

  /** Parameter counts per part (PyTorch's numel over parameters; a tied head counts once, as PyTorch does). */
  parameterCounts(): { vision: number; projector: number; lm: number; total: number } {
    const vision = countParameters(this.vision);
    const projector = countParameters(this.projector);
    const total = countParameters(this);
    return { vision, projector, lm: total - vision - projector, total };
  }
}

/** Keyed initialisation of every part: FastViTHD's, LLaVA's projector default, Qwen2's N(0, 0.02). */
export function initFastVLM(m: FastVLM, seed: number | bigint | string): void {
  initFastViTHD(m.vision, seed);
  initProjector(m.projector, seed);
  initQwen2(m.model, seed, 'model');
  if (m.lmHead) initQwen2Head(m, seed);
}

function initQwen2Head(m: FastVLM, seed: number | bigint | string): void {
  const std = m.config.lm.initializer_range;
  fillTruncNormal(m.lmHead!.weight, new TensorRandom(seed, 'qwen2-init', 'lm_head.weight'), std);
}
