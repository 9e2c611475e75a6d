// The op selftest, second GEMM part: the GPU-only kernels (blocked, vec4, subgroups where exposed) against the naive
// one, on a few shapes each on lavapipe (all shapes with MIXFORGE_SLOW_TESTS=1).
import { selftestPartTest } from './selftest-parts.ts';

selftestPartTest('gemm-parity-gpu-only');
