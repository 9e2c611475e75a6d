// The training loop end to end on lavapipe: fastvithd-tiny trained on a mixture built from the demo data learns
// (loss falls, image→text retrieval on the training pairs rises far above chance).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { StreamingDataset } from '../../../train-bridge/loader/dataset.ts';
import { Trainer } from '../../../train-bridge/train/loop.ts';
import { MetricsLog, readMetrics } from '../../../train-bridge/train/metrics.ts';
import { PairStream } from '../../../train-bridge/train/pairs.ts';
import { resolveRunConfig } from '../../../train-bridge/train/presets.ts';
import { useTrainerSuite } from './trainer-suite.ts';

const suite = useTrainerSuite();

test('fastvithd-tiny learns the demo pairs: loss falls, retrieval rises far above chance', async () => {
  const { eng, manifest, dir } = suite;
  // The full-model preset with a higher peak lr: a few dozen steps from scratch instead of an epoch of millions.
  const config = resolveRunConfig(
    'fastvithd-tiny',
    'stage1.5',
    { resolution: 64, steps: 30, batchSize: 8, lr: 3e-3 },
    () => 0,
  );
  const trainer = await Trainer.create(eng, { manifest, config });
  const probe = new StreamingDataset(manifest);
  await probe.open();
  const probeStream = new PairStream(probe, { resolution: 64, text: config.heads!.text });
  const pairs = await probeStream.next(16);
  await probeStream.close();
  assert.equal(new Set(pairs.captions).size, 16, 'the probe pairs have distinct captions');
  const before = await trainer.retrievalAccuracy(pairs, 'batch');
  const metrics = new MetricsLog(join(dir, 'learn', 'metrics.jsonl'));
  await metrics.open();
  await trainer.run({ metrics });
  const after = await trainer.retrievalAccuracy(pairs, 'batch');
  const log = await readMetrics(metrics.path);
  assert.deepEqual(
    log.map((m) => m.step),
    Array.from({ length: 30 }, (_, i) => i + 1),
  );
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(log.slice(0, 3).map((m) => m.loss));
  const last = mean(log.slice(-5).map((m) => m.loss));
  assert.ok(last < 0.4 * first, `loss ${first.toFixed(3)} → ${last.toFixed(3)}`);
  assert.ok(log.every((m) => Number.isFinite(m.loss) && m.imagesPerSec > 0));
  assert.ok(before <= 3 / 16, `retrieval before training ${before}`);
  assert.ok(after >= 0.5, `retrieval after training ${after} (chance 1/16)`);
  trainer.dispose();
});
