// FastVLM's vision→LLM projector `mlp2x_gelu`: Linear(3072→d), GELU, Linear(d→d), an nn.Sequential whose
// tensors are named 0.* and 2.* (the GELU at index 1 has none); LLaVA checkpoints prefix them with "mm_projector.".
import { defaultInit } from './init.ts';
import { Linear } from './layers.ts';
import { Module } from './module.ts';

export const PROJECTOR_PREFIX = 'mm_projector.';

export class FastVLMProjector extends Module {
  readonly kind = 'FastVLMProjector';
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(
    readonly visionDim: number,
    readonly llmDim: number,
  ) {
    super();
    if (!Number.isInteger(visionDim) || visionDim <= 0 || !Number.isInteger(llmDim) || llmDim <= 0) {
      throw new RangeError(`projector dimensions must be positive integers, got ${visionDim} → ${llmDim}`);
    }
    this.fc1 = this.registerModule('0', new Linear(visionDim, llmDim, true));
    this.fc2 = this.registerModule('2', new Linear(llmDim, llmDim, true));
  }
}

/** LLaVA builds the projector from plain nn.Linear layers: PyTorch's default init, U(±1/√fan_in). */
export function initProjector(p: FastVLMProjector, seed: number | bigint | string): void {
  defaultInit(p.fc1.weight, p.fc1.bias, p.visionDim, `${PROJECTOR_PREFIX}0`, seed, 'projector-init');
  defaultInit(p.fc2.weight, p.fc2.bias, p.llmDim, `${PROJECTOR_PREFIX}2`, seed, 'projector-init');
}
