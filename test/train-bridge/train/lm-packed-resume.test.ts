// Exact resume of a packed LM run (fastvlm-tiny, full model) on lavapipe: stopped after its first update (mid-epoch)
// and resumed from the checkpoint's packed loader state, it ends bit-identical to an uninterrupted run, across an
// epoch boundary and with accumulation.
import assert from 'node:assert/strict';
import { cp } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { writeTokenCounts } from '../../../train-bridge/loader/token-counts.ts';
import { latestCheckpoint, readTrainerState } from '../../../train-bridge/train/checkpoint.ts';
import { LmTrainer, MODEL_FOLDER, packedDataset } from '../../../train-bridge/train/lm-loop.ts';
import { resolveRunConfig } from '../../../train-bridge/train/presets.ts';
import { assertSameCheckpoints } from './same-checkpoints.ts';
import { useTrainerSuite } from './trainer-suite.ts';

const suite = useTrainerSuite();

test('packed run: stop mid-epoch, resume: bit-identical weights, moments and packed loader state', {
  timeout: 900_000,
}, async () => {
  const { eng, dir } = suite;
  // The training mixture with its token counts (a copy: the shared fixture stays as built).
  const manifest = join(dir, 'mix', 'manifest.json');
  await cp(dirname(suite.manifest), dirname(manifest), { recursive: true });
  await writeTokenCounts(manifest, { resolution: 64 });
  // Packs of ≤ 128 tokens (about 4 samples of ~30), micro-batches of 2 packs accumulated to 4.
  const pack = { capacity: 128, window: 8 };
  const config = resolveRunConfig(
    'fastvlm-tiny',
    'stage2',
    { resolution: 64, steps: 2, batchSize: 4, microBatch: 2, lr: 3e-3, maxLength: 96, pack },
    () => 0,
  );
  const probe = packedDataset(manifest, pack, 64);
  await probe.open();
  const packs = probe.globalPackCount();
  assert.ok(
    packs > 4 && packs < 8,
    `${packs} packs of 26 samples: update 1 ends mid-epoch, update 2 in epoch 1`,
  );
  const straight = await LmTrainer.create(eng, { manifest, config });
  const fill: number[] = [];
  await straight.run({
    checkpointDir: join(dir, 'straight'),
    onStep: (m) => fill.push((m.tokens ?? 0) / (m.packCapacity ?? 1)),
  });
  for (const e of fill) assert.ok(e > 0.3 && e <= 1, `packing efficiency ${e}`);
  const interrupted = await LmTrainer.create(eng, { manifest, config });
  await interrupted.run({ until: 1, checkpointDir: join(dir, 'resumed') });
  interrupted.dispose();
  const at1 = (await latestCheckpoint(join(dir, 'resumed')))!;
  const mid = (await readTrainerState(at1)).loader;
  assert.equal(mid.kind, 'mixforge.packed-state');
  assert.ok(mid.kind === 'mixforge.packed-state' && mid.mix.position < mid.mix.total, 'stopped mid-epoch');
  const resumed = await LmTrainer.create(eng, { manifest, resumeFrom: at1 });
  assert.equal(resumed.step, 1);
  await resumed.run({ checkpointDir: join(dir, 'resumed') });
  assert.equal(resumed.step, 2);
  const a = (await latestCheckpoint(join(dir, 'straight')))!;
  const b = (await latestCheckpoint(join(dir, 'resumed')))!;
  await assertSameCheckpoints(a, b, [join(MODEL_FOLDER, 'model.safetensors'), 'optimizer.safetensors']);
  process.stdout.write(
    `# ${packs} packs per epoch; packing efficiency per update ${fill.map((e) => e.toFixed(3)).join(' ')}\n`,
  );
  straight.dispose();
  resumed.dispose();
});
