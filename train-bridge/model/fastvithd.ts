// FastViTHD (FastVLM's vision encoder) as a module tree: stem, five stages with patch embeddings and RepCPE
// between them, and the 3×3 expansion to 2·C5 channels. Architecture per shared/FASTVITHD.md; no classifier head.
import { SpecError } from '../../core/errors.ts';
import { AttentionBlock, PatchEmbed, RepCPE, RepMixerBlock } from './fastvit-blocks.ts';
import { MobileOneBlock } from './mobileone.ts';
import { Module, ModuleList } from './module.ts';

export type TokenMixerType = 'repmixer' | 'attention';

export interface FastViTHDConfig {
  name: string;
  /** Channels of the five stages. */
  widths: readonly number[];
  /** Blocks per stage. */
  depths: readonly number[];
  tokenMixers: readonly TokenMixerType[];
  /** Stages that start with a RepCPE (conditional positional encoding). */
  positionalEncoding: readonly boolean[];
  mlpRatio: number;
  headDim: number;
  repMixerKernelSize: number;
  cpeKernelSize: number;
  downPatchSize: number;
  downStride: number;
  layerScaleInit: number;
  /** Output channels of the final expansion relative to the last stage width. */
  clsRatio: number;
  /** FastViTHD builds its stem without 1×1 scale branches. */
  stemScaleBranch: boolean;
}

const FASTVITHD: FastViTHDConfig = {
  name: 'fastvithd',
  widths: [96, 192, 384, 768, 1536],
  depths: [2, 12, 24, 4, 2],
  tokenMixers: ['repmixer', 'repmixer', 'repmixer', 'attention', 'attention'],
  positionalEncoding: [false, false, false, true, true],
  mlpRatio: 4,
  headDim: 32,
  repMixerKernelSize: 3,
  cpeKernelSize: 7,
  downPatchSize: 7,
  downStride: 2,
  layerScaleInit: 1e-5,
  clsRatio: 2,
  stemScaleBranch: false,
};

/** Same structure at toy widths and one block per stage, for tests on a CPU software GPU at 64×64. */
const FASTVITHD_TINY: FastViTHDConfig = {
  ...FASTVITHD,
  name: 'fastvithd-tiny',
  widths: [8, 16, 32, 64, 128],
  depths: [1, 1, 1, 1, 1],
  headDim: 8,
};

export const MODEL_CONFIGS: Readonly<Record<string, FastViTHDConfig>> = {
  fastvithd: FASTVITHD,
  'fastvithd-tiny': FASTVITHD_TINY,
};

/** The named config; `where` says which input gave the name (for the error message). */
export function modelConfig(name: string, where = 'model name'): FastViTHDConfig {
  const config = Object.hasOwn(MODEL_CONFIGS, name) ? MODEL_CONFIGS[name] : undefined;
  if (!config) {
    throw new SpecError(
      where,
      '',
      `unknown model "${name}" (known: ${Object.keys(MODEL_CONFIGS).join(', ')})`,
    );
  }
  return config;
}

export interface FastViTHDOptions {
  /** Build the folded (reparameterised) form directly, as the published FastVLM checkpoints are stored. */
  inferenceMode?: boolean;
}

/** One entry of `network`: a stage (list of blocks), a PatchEmbed, or a RepCPE. */
export type NetworkEntry = ModuleList<RepMixerBlock | AttentionBlock> | PatchEmbed | RepCPE;

export class FastViTHD extends Module {
  readonly kind = 'FastViTHD';
  readonly patchEmbed: ModuleList<MobileOneBlock>;
  readonly network: ModuleList<NetworkEntry>;
  readonly convExp: MobileOneBlock;

  constructor(
    readonly config: FastViTHDConfig,
    options: FastViTHDOptions = {},
  ) {
    super();
    validateConfig(config);
    const inferenceMode = options.inferenceMode ?? false;
    const { widths } = config;
    const stem = { inferenceMode, useScaleBranch: config.stemScaleBranch };
    this.patchEmbed = this.registerModule(
      'patch_embed',
      new ModuleList([
        new MobileOneBlock({
          ...stem,
          inChannels: 3,
          outChannels: widths[0],
          kernelSize: 3,
          stride: 2,
          padding: 1,
        }),
        new MobileOneBlock({
          ...stem,
          inChannels: widths[0],
          outChannels: widths[0],
          kernelSize: 3,
          stride: 2,
          padding: 1,
          groups: widths[0],
        }),
        new MobileOneBlock({ ...stem, inChannels: widths[0], outChannels: widths[0], kernelSize: 1 }),
      ]),
    );

    // Module order: stage1, embed, stage2, embed, stage3, embed, CPE, stage4, embed, CPE, stage5.
    const network = new ModuleList<NetworkEntry>();
    for (let i = 0; i < widths.length; i++) {
      if (config.positionalEncoding[i])
        network.append(new RepCPE(widths[i], config.cpeKernelSize, inferenceMode));
      const blocks = new ModuleList<RepMixerBlock | AttentionBlock>();
      for (let b = 0; b < config.depths[i]; b++) {
        blocks.append(
          config.tokenMixers[i] === 'repmixer'
            ? new RepMixerBlock(widths[i], {
                kernelSize: config.repMixerKernelSize,
                mlpRatio: config.mlpRatio,
                layerScaleInit: config.layerScaleInit,
                inferenceMode,
              })
            : new AttentionBlock(widths[i], {
                headDim: config.headDim,
                mlpRatio: config.mlpRatio,
                layerScaleInit: config.layerScaleInit,
              }),
        );
      }
      network.append(blocks);
      if (i === widths.length - 1) break;
      network.append(
        new PatchEmbed({
          patchSize: config.downPatchSize,
          stride: config.downStride,
          inChannels: widths[i],
          embedDim: widths[i + 1],
          inferenceMode,
        }),
      );
    }
    this.network = this.registerModule('network', network);

    const last = widths[widths.length - 1];
    this.convExp = this.registerModule(
      'conv_exp',
      new MobileOneBlock({
        inChannels: last,
        outChannels: Math.trunc(last * config.clsRatio),
        kernelSize: 3,
        padding: 1,
        groups: last,
        useSE: true,
        inferenceMode,
      }),
    );
  }

  /** Channels of the image embedding (3072 for FastViTHD). */
  get outChannels(): number {
    return this.convExp.outChannels;
  }
}

function validateConfig(c: FastViTHDConfig): void {
  const n = c.widths.length;
  const bad = (field: string, message: string) => new SpecError(`model config ${c.name}`, field, message);
  if (n < 1) throw bad('widths', 'needs at least one stage');
  for (const [field, arr] of [
    ['depths', c.depths],
    ['tokenMixers', c.tokenMixers],
    ['positionalEncoding', c.positionalEncoding],
  ] as const) {
    if (arr.length !== n) throw bad(field, `has ${arr.length} entries, widths has ${n}`);
  }
  c.widths.forEach((w, i) => {
    if (!Number.isInteger(w) || w <= 0) throw bad(`widths[${i}]`, `expected a positive integer, got ${w}`);
    if (c.tokenMixers[i] === 'attention' && w % c.headDim !== 0) {
      throw bad(`widths[${i}]`, `${w} is not a multiple of headDim ${c.headDim}`);
    }
  });
}

/** Overall downsampling of the encoder: 4 in the stem, then the stride of each patch embedding. */
export function downsampleFactor(config: FastViTHDConfig): number {
  return 4 * config.downStride ** (config.widths.length - 1);
}
