// Which GEMM kernel runs: the first registered kernel that supports the shape on this device, unless one
// is forced by name (benchmarks, parity tests). Register a faster kernel with a higher priority.
// GPU adapters: the 128×128 register-blocked kernels (subgroup variant where the feature is enabled, then
// vec4 loads) for outputs of at least 128×128, the 64×64 tiled kernel otherwise; CPU adapters: row-broadcast.
import type { Engine } from '../engine.ts';
import { blockedGemm128, blockedGemm128v4, blockedGemm128v4sg } from './blocked.ts';
import { naiveGemm } from './naive.ts';
import { rowBroadcastGemm8x64 } from './row-broadcast.ts';
import type { GemmKernel, GemmShape } from './spec.ts';
import { tiledGemm } from './tiled.ts';

const registered: { kernel: GemmKernel; priority: number }[] = [
  { kernel: blockedGemm128v4sg, priority: 40 },
  { kernel: blockedGemm128v4, priority: 30 },
  { kernel: blockedGemm128, priority: 25 },
  { kernel: rowBroadcastGemm8x64, priority: 20 },
  { kernel: tiledGemm, priority: 10 },
  { kernel: naiveGemm, priority: 0 },
];
const forced = new WeakMap<Engine, string>();

export function registerGemmKernel(kernel: GemmKernel, priority: number): void {
  registered.push({ kernel, priority });
  registered.sort((a, b) => b.priority - a.priority);
}

export function gemmKernels(): GemmKernel[] {
  return registered.map((r) => r.kernel);
}

/** The kernels that can run on this engine when forced (a subgroup kernel needs the `subgroups` feature). */
export function runnableGemmKernels(eng: Engine): GemmKernel[] {
  return gemmKernels().filter((k) => k.runsOn?.(eng) ?? true);
}

/** Forces one kernel on this engine (undefined restores automatic choice). */
export function forceGemmKernel(eng: Engine, name: string | undefined): void {
  if (name === undefined) forced.delete(eng);
  else {
    const k = registered.find((r) => r.kernel.name === name)?.kernel;
    if (!k) throw new Error(`unknown GEMM kernel ${name}`);
    if (k.runsOn && !k.runsOn(eng)) throw new Error(`GEMM kernel ${name} cannot run on this adapter`);
    forced.set(eng, name);
  }
}

export function selectGemmKernel(eng: Engine, s: GemmShape): GemmKernel {
  const name = forced.get(eng);
  if (name) return registered.find((r) => r.kernel.name === name)!.kernel;
  const k = registered.find((r) => r.kernel.supports(eng, s));
  if (!k) throw new Error('no GEMM kernel supports this device');
  return k.kernel;
}
