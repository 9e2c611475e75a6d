// The op selftest, third part: attention, the contrastive loss, the language-model ops and the optimiser.
import { selftestPartTest } from './selftest-parts.ts';

selftestPartTest('attention-lm');
