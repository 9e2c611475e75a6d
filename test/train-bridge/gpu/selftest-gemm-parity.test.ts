// The op selftest, first part: every GEMM kernel against the naive one (GPU-only kernels on a few shapes on lavapipe).
import { selftestPartsCoverAll, selftestPartTest } from './selftest-parts.ts';

selftestPartTest('gemm-parity');
selftestPartsCoverAll();
