// Exact resume of the LM objective (fastvlm-tiny, full model) on lavapipe: a run stopped at step k and resumed from
// its checkpoint ends bit-identical to an uninterrupted one, across an epoch boundary and with accumulation.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { latestCheckpoint } from '../../../train-bridge/train/checkpoint.ts';
import { LmTrainer, MODEL_FOLDER } from '../../../train-bridge/train/lm-loop.ts';
import { resolveRunConfig } from '../../../train-bridge/train/presets.ts';
import { assertSameCheckpoints } from './same-checkpoints.ts';
import { useTrainerSuite } from './trainer-suite.ts';

const suite = useTrainerSuite();

// Three short runs of a model with Qwen2's 151,936-token vocabulary: minutes on a loaded lavapipe.
test('LM objective: stop at step k, resume: bit-identical weights, moments and loader state at step n', {
  timeout: 900_000,
}, async () => {
  const { eng, manifest, dir } = suite;
  // Micro-batches of 4 accumulated to 8; 4 steps = 32 samples cross the epoch boundary (26 conversations).
  const config = resolveRunConfig(
    'fastvlm-tiny',
    'stage2',
    { resolution: 64, steps: 4, batchSize: 8, microBatch: 4, lr: 3e-3, maxLength: 96 },
    () => 0,
  );
  assert.equal(config.objective, 'lm');
  assert.equal(config.trainLm, true);
  const straight = await LmTrainer.create(eng, { manifest, config });
  await straight.run({ checkpointDir: join(dir, 'straight') });
  const interrupted = await LmTrainer.create(eng, { manifest, config });
  await interrupted.run({ until: 2, checkpointDir: join(dir, 'resumed') });
  interrupted.dispose();
  const at2 = (await latestCheckpoint(join(dir, 'resumed'))) ?? '';
  assert.ok(at2.endsWith('step-00000002'), `latest is ${at2}`);
  const resumed = await LmTrainer.create(eng, { manifest, resumeFrom: at2 });
  assert.equal(resumed.step, 2);
  await resumed.run({ checkpointDir: join(dir, 'resumed') });
  assert.equal(resumed.step, 4);
  const a = (await latestCheckpoint(join(dir, 'straight')))!;
  const b = (await latestCheckpoint(join(dir, 'resumed')))!;
  assert.deepEqual((await readdir(join(a, MODEL_FOLDER))).sort(), [
    'config.json',
    'model.safetensors',
    'tokenizer.json',
  ]);
  await assertSameCheckpoints(a, b, [join(MODEL_FOLDER, 'model.safetensors'), 'optimizer.safetensors']);
  straight.dispose();
  resumed.dispose();
});
