// The op selftest, first part: the GEMM kernels a CPU adapter picks against the naive one (the GPU-only kernels are
// in selftest-gemm-parity-gpu-only.test.ts).
import { selftestPartsCoverAll, selftestPartTest } from './selftest-parts.ts';

selftestPartTest('gemm-parity');
selftestPartsCoverAll();
