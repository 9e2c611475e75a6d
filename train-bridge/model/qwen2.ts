// The Qwen2 decoder as Hugging Face's Qwen2 defines it (names = its state_dict keys under "model."): token
// embedding, per layer RMSNorm → GQA self-attention (q/k/v with bias, o without, RoPE) → RMSNorm → SwiGLU MLP.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { SourceFileError, SpecError } from '../../core/errors.ts';
import { HostTensor } from './host-tensor.ts';
import { fillTruncNormal, TensorRandom } from './init.ts';
import { Linear } from './layers.ts';
import { Module, ModuleList } from './module.ts';

/** The fields of a Hugging Face Qwen2 `config.json` the decoder needs (other keys are kept, not checked). */
export const Qwen2ConfigSchema = z.looseObject({
  hidden_size: z.number().int().positive(),
  intermediate_size: z.number().int().positive(),
  num_hidden_layers: z.number().int().positive(),
  num_attention_heads: z.number().int().positive(),
  num_key_value_heads: z.number().int().positive(),
  vocab_size: z.number().int().positive(),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().default(10000),
  tie_word_embeddings: z.boolean().default(false),
  hidden_act: z.literal('silu').default('silu'),
  initializer_range: z.number().positive().default(0.02),
  max_position_embeddings: z.number().int().positive().default(32768),
});

export type Qwen2Config = z.infer<typeof Qwen2ConfigSchema>;

/** Qwen/Qwen2-0.5B's config.json (the LM of FastVLM-0.5B). */
export const QWEN2_0_5B: Qwen2Config = {
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  vocab_size: 151936,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000,
  tie_word_embeddings: true,
  hidden_act: 'silu',
  initializer_range: 0.02,
  max_position_embeddings: 32768,
};

/**
 * Sized for tests on lavapipe: Qwen2's full vocabulary (the real tokenizer's ids) with a 32-wide model, two
 * layers, 4 query heads sharing 2 KV heads (so GQA is exercised).
 */
export const QWEN2_TINY: Qwen2Config = {
  ...QWEN2_0_5B,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
};

export const QWEN2_CONFIGS: Readonly<Record<string, Qwen2Config>> = {
  'qwen2-0.5b': QWEN2_0_5B,
  'qwen2-tiny': QWEN2_TINY,
};

export function qwen2Config(name: string, where = 'model name'): Qwen2Config {
  const c = Object.hasOwn(QWEN2_CONFIGS, name) ? QWEN2_CONFIGS[name] : undefined;
  if (!c)
    throw new SpecError(where, '', `unknown LM "${name}" (known: ${Object.keys(QWEN2_CONFIGS).join(', ')})`);
  return c;
}

/** Parse a config.json object; errors name the file and field. */
export function parseQwen2Config(json: unknown, source: string): Qwen2Config {
  const r = Qwen2ConfigSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new SourceFileError(source, `config field ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const c = r.data;
  if (c.hidden_size % c.num_attention_heads !== 0 || c.num_attention_heads % c.num_key_value_heads !== 0) {
    throw new SourceFileError(
      source,
      `hidden_size ${c.hidden_size}, num_attention_heads ${c.num_attention_heads} and num_key_value_heads ` +
        `${c.num_key_value_heads} do not divide evenly`,
    );
  }
  return c;
}

export async function readQwen2Config(path: string): Promise<Qwen2Config> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new SourceFileError(path, `not a readable JSON config: ${(err as Error).message}`);
  }
  return parseQwen2Config(json, path);
}

export function headDim(c: Qwen2Config): number {
  return c.hidden_size / c.num_attention_heads;
}

/** A vector of per-channel weights (RMSNorm's γ), initialised to 1. */
export class RMSNorm extends Module {
  readonly kind = 'Qwen2RMSNorm';
  readonly weight: HostTensor;
  constructor(
    readonly size: number,
    readonly eps: number,
  ) {
    super();
    this.weight = this.registerParameter('weight', new HostTensor([size], undefined, 1));
  }
}

/** nn.Embedding(vocab, hidden): `weight` (vocab, hidden). */
export class Embedding extends Module {
  readonly kind = 'Embedding';
  readonly weight: HostTensor;
  constructor(
    readonly vocab: number,
    readonly dim: number,
  ) {
    super();
    this.weight = this.registerParameter('weight', new HostTensor([vocab, dim]));
  }
}

export class Qwen2Attention extends Module {
  readonly kind = 'Qwen2Attention';
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly oProj: Linear;
  constructor(c: Qwen2Config) {
    super();
    const hd = headDim(c);
    this.qProj = this.registerModule('q_proj', new Linear(c.hidden_size, c.num_attention_heads * hd, true));
    this.kProj = this.registerModule('k_proj', new Linear(c.hidden_size, c.num_key_value_heads * hd, true));
    this.vProj = this.registerModule('v_proj', new Linear(c.hidden_size, c.num_key_value_heads * hd, true));
    this.oProj = this.registerModule('o_proj', new Linear(c.num_attention_heads * hd, c.hidden_size, false));
  }
}

export class Qwen2MLP extends Module {
  readonly kind = 'Qwen2MLP';
  readonly gateProj: Linear;
  readonly upProj: Linear;
  readonly downProj: Linear;
  constructor(c: Qwen2Config) {
    super();
    this.gateProj = this.registerModule('gate_proj', new Linear(c.hidden_size, c.intermediate_size, false));
    this.upProj = this.registerModule('up_proj', new Linear(c.hidden_size, c.intermediate_size, false));
    this.downProj = this.registerModule('down_proj', new Linear(c.intermediate_size, c.hidden_size, false));
  }
}

export class Qwen2DecoderLayer extends Module {
  readonly kind = 'Qwen2DecoderLayer';
  readonly selfAttn: Qwen2Attention;
  readonly mlp: Qwen2MLP;
  readonly inputLayernorm: RMSNorm;
  readonly postAttentionLayernorm: RMSNorm;
  constructor(c: Qwen2Config) {
    super();
    this.selfAttn = this.registerModule('self_attn', new Qwen2Attention(c));
    this.mlp = this.registerModule('mlp', new Qwen2MLP(c));
    this.inputLayernorm = this.registerModule('input_layernorm', new RMSNorm(c.hidden_size, c.rms_norm_eps));
    this.postAttentionLayernorm = this.registerModule(
      'post_attention_layernorm',
      new RMSNorm(c.hidden_size, c.rms_norm_eps),
    );
  }
}

/**
 * Qwen2Model's own tensors (embed_tokens, layers, norm). A subclass (LLaVA's model) may register more
 * children after these, as LlavaQwen2Model does (vision tower, projector).
 */
export class Qwen2Model extends Module {
  readonly kind: string = 'Qwen2Model';
  readonly embedTokens: Embedding;
  readonly layers: ModuleList<Qwen2DecoderLayer>;
  readonly norm: RMSNorm;
  constructor(readonly config: Qwen2Config) {
    super();
    this.embedTokens = this.registerModule(
      'embed_tokens',
      new Embedding(config.vocab_size, config.hidden_size),
    );
    this.layers = this.registerModule(
      'layers',
      new ModuleList(Array.from({ length: config.num_hidden_layers }, () => new Qwen2DecoderLayer(config))),
    );
    this.norm = this.registerModule('norm', new RMSNorm(config.hidden_size, config.rms_norm_eps));
  }
}

/**
 * Hugging Face's Qwen2PreTrainedModel._init_weights: N(0, initializer_range) for linears and the embedding
 * (plain normal; truncated at ±2 here, which at std 0.02 is 100σ and never triggers), zero biases, norms at 1.
 * Each tensor draws from its own stream keyed by (seed, name). Only the decoder's own tensors (a subclass's
 * extra children are initialised by their owners).
 */
export function initQwen2(root: Qwen2Model, seed: number | bigint | string, prefix = ''): void {
  const std = root.config.initializer_range;
  const purpose = 'qwen2-init';
  const join = (n: string) => (prefix === '' ? n : `${prefix}.${n}`);
  const own = [
    ...root.embedTokens.namedParameters(join('embed_tokens')),
    ...root.layers.namedParameters(join('layers')),
    ...root.norm.namedParameters(join('norm')),
  ];
  for (const [name, t] of own) {
    if (name.endsWith('norm.weight')) t.fill(1);
    else if (name.endsWith('.bias')) t.fill(0);
    else fillTruncNormal(t, new TensorRandom(seed, purpose, name), std);
  }
}
