// Exact resume on lavapipe: a run stopped at step k and resumed from its checkpoint (model, AdamW moments, schedule
// position, loader state) ends bit-identical to an uninterrupted run.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { latestCheckpoint, readTrainerState } from '../../../train-bridge/train/checkpoint.ts';
import { Trainer } from '../../../train-bridge/train/loop.ts';
import { resolveRunConfig } from '../../../train-bridge/train/presets.ts';
import { assertSameCheckpoints } from './same-checkpoints.ts';
import { useTrainerSuite } from './trainer-suite.ts';

const suite = useTrainerSuite();

test('stop at step k, resume from the checkpoint: bit-identical parameters, moments and BN statistics at step n', async () => {
  const { eng, manifest, dir } = suite;
  // Micro-batches of 2 accumulated to 4 exercise accumulation; 7 steps cross an epoch boundary (26 pairs).
  const config = resolveRunConfig(
    'fastvithd-tiny',
    'stage1.5',
    { resolution: 64, steps: 7, batchSize: 4, microBatch: 2, lr: 3e-3 },
    () => 0,
  );
  const straight = await Trainer.create(eng, { manifest, config });
  await straight.run({ checkpointDir: join(dir, 'straight') });
  const interrupted = await Trainer.create(eng, { manifest, config });
  await interrupted.run({ until: 4, checkpointDir: join(dir, 'resumed') });
  interrupted.dispose();
  const at4 = (await latestCheckpoint(join(dir, 'resumed'))) ?? '';
  assert.ok(at4.endsWith('step-00000004'), `latest is ${at4}`);
  const state = await readTrainerState(at4);
  assert.equal(state.step, 4);
  assert.equal(state.loader.kind === 'mixforge.loader-state' && state.loader.position > 0, true);
  const resumed = await Trainer.create(eng, { manifest, resumeFrom: at4 });
  assert.equal(resumed.step, 4);
  await resumed.run({ checkpointDir: join(dir, 'resumed') });
  assert.equal(resumed.step, 7);
  const a = await latestCheckpoint(join(dir, 'straight'));
  const b = await latestCheckpoint(join(dir, 'resumed'));
  assert.ok(a && b);
  await assertSameCheckpoints(a, b, ['encoder.safetensors', 'heads.safetensors', 'optimizer.safetensors']);
  // The resumed folder holds both checkpoints; the straight one only its last.
  assert.deepEqual((await readdir(join(dir, 'resumed'))).sort(), [
    'latest.json',
    'step-00000004',
    'step-00000007',
  ]);
  straight.dispose();
  resumed.dispose();
});
