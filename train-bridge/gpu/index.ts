// Public API of the WebGPU engine (see docs/gpu-engine.md): re-exports only.
export {
  type AcquireOptions,
  type AdapterDescription,
  GpuUnavailableError,
  lavapipeThreadsFor,
  SMALL_PASS_FLOPS,
} from './device.ts';
export { Engine, type EngineOptions } from './engine.ts';
export { forceGemmKernel, gemmKernels, registerGemmKernel } from './gemm/registry.ts';
export type { GemmKernel, GemmShape } from './gemm/spec.ts';
export * as ops from './ops/index.ts';
export { AdamW, type AdamWOptions, type AdamWState } from './optim/adamw.ts';
export { clipGradNorm } from './optim/clip-grad-norm.ts';
export { Tensor } from './tensor.ts';
