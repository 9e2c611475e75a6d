// The resume tests' final check: two checkpoint folders hold bit-identical tensors and the same loader state, and
// the run they end went into its second epoch.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readSafetensors } from '../../../train-bridge/safetensors.ts';
import { loaderStateEpoch, readTrainerState } from '../../../train-bridge/train/checkpoint.ts';

/** `files`: the safetensors files of a checkpoint folder to compare, tensor by tensor and byte for byte. */
export async function assertSameCheckpoints(a: string, b: string, files: readonly string[]): Promise<void> {
  for (const file of files) {
    const fa = await readSafetensors(join(a, file));
    const fb = await readSafetensors(join(b, file));
    assert.deepEqual([...fa.tensors.keys()], [...fb.tensors.keys()]);
    for (const [name, ta] of fa.tensors) {
      const tb = fb.tensors.get(name);
      assert.ok(tb && Buffer.from(ta.bytes).equals(Buffer.from(tb.bytes)), `${file}: ${name} differs`);
    }
  }
  const sa = await readTrainerState(a);
  assert.deepEqual((await readTrainerState(b)).loader, sa.loader);
  assert.equal(loaderStateEpoch(sa.loader), 1, 'the run went into its second epoch');
}
