// Which GEMM kernel runs: the first registered kernel that supports the shape on this device, unless one
// is forced by name (benchmarks, parity tests). Register a faster kernel with a higher priority.
import type { Engine } from '../engine.ts';
import { naiveGemm } from './naive.ts';
import { rowBroadcastGemm8x64 } from './row-broadcast.ts';
import type { GemmKernel, GemmShape } from './spec.ts';
import { tiledGemm } from './tiled.ts';

const registered: { kernel: GemmKernel; priority: number }[] = [
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

/** Forces one kernel on this engine (undefined restores automatic choice). */
export function forceGemmKernel(eng: Engine, name: string | undefined): void {
  if (name === undefined) forced.delete(eng);
  else if (!registered.some((r) => r.kernel.name === name)) throw new Error(`unknown GEMM kernel ${name}`);
  else forced.set(eng, name);
}

export function selectGemmKernel(eng: Engine, s: GemmShape): GemmKernel {
  const name = forced.get(eng);
  if (name) return registered.find((r) => r.kernel.name === name)!.kernel;
  const k = registered.find((r) => r.kernel.supports(eng, s));
  if (!k) throw new Error('no GEMM kernel supports this device');
  return k.kernel;
}
