// The reference GEMM kernel: one thread per output element, no tiling. The baseline the benchmark
// compares against and the kernel every faster one must agree with.
import type { Engine } from '../engine.ts';
import type { KernelDef } from '../kernel.ts';
import {
  GEMM_UNIFORMS,
  type GemmKernel,
  type GemmOperand,
  type GemmShape,
  gemmUniforms,
  perTransposePair,
} from './spec.ts';

const STORAGE = [
  { name: 'A', access: 'read' as const },
  { name: 'B', access: 'read' as const },
  { name: 'C', access: 'read_write' as const },
];

const naiveDef = perTransposePair(
  ({ aIdx, bIdx, suffix }): KernelDef => ({
    name: `gemm_naive_${suffix}`,
    uniforms: GEMM_UNIFORMS,
    storage: STORAGE,
    body: /* wgsl */ `
@compute @workgroup_size(8, 8) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  let m = gid.y;
  let b = gid.z;
  if (m >= P.M || n >= P.N) { return; }
  let ao = P.aBase + b * P.strideA;
  let bo = P.bBase + b * P.strideB;
  var acc = 0.0;
  for (var k = 0u; k < P.K; k++) { acc += A[ao + ${aIdx}] * B[bo + ${bIdx}]; }
  let ci = P.cBase + b * P.strideC + m * P.ldc + n;
  if (P.beta != 0.0) { C[ci] = P.alpha * acc + P.beta * C[ci]; } else { C[ci] = P.alpha * acc; }
}`,
  }),
);

export const naiveGemm: GemmKernel = {
  name: 'naive',
  supports: () => true,
  encode(eng: Engine, s: GemmShape, a: GemmOperand, b: GemmOperand, c: GemmOperand) {
    eng.dispatch(naiveDef(s.transA, s.transB), [a.range, b.range, c.range], gemmUniforms(s, a, b, c), [
      Math.ceil(s.N / 8),
      Math.ceil(s.M / 8),
      s.batch,
    ]);
  },
};
