// The op selftest, second part: elementwise and shape ops, matmul, convolution, normalisation and reductions, also on
// an engine whose bindings stop at 128 KiB (the chunked paths).
import { selftestPartTest } from './selftest-parts.ts';

selftestPartTest('vision-ops');
