import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { mixtureSamples } from '../../../train-bridge/export/mixture-samples.ts';
import { BatchLoader } from '../../../train-bridge/loader/batches.ts';
import { StreamingDataset } from '../../../train-bridge/loader/dataset.ts';
import { collect } from './fixtures.ts';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../../cli/main.ts');
let dir: string;
let out: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-built-'));
  out = join(dir, 'out');
  // The real pipeline: demo data in every source format, built by `mixforge demo` (plan → … → finalize).
  await run(process.execPath, ['--import', 'tsx', CLI, 'demo', '--data', join(dir, 'data'), '--out', out]);
});
after(() => rm(dir, { recursive: true, force: true }));

describe('loader on a mixture built by the pipeline', () => {
  it('streams every sample once, partitions 3 ranks, and batches its real images', async () => {
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as {
      totals: { rows: number };
    };
    const stored = (await collect(mixtureSamples(out))).map((s) => s.id);
    assert.equal(stored.length, manifest.totals.rows);
    const order = (await collect(new StreamingDataset(out, { seed: 1 }))).map((s) => s.id);
    assert.deepEqual([...order].sort(), [...stored].sort());
    assert.notDeepEqual(order, stored);
    const ranks = await Promise.all(
      [0, 1, 2].map(async (rank) =>
        (await collect(new StreamingDataset(out, { seed: 1, rank, worldSize: 3, remainder: 'drop' }))).map(
          (s) => s.id,
        ),
      ),
    );
    ranks.forEach((r, rank) => {
      assert.equal(r.length, Math.floor(order.length / 3));
      for (const [k, id] of r.entries()) assert.equal(id, order[rank + 3 * k]);
    });
    const batches = await collect(
      new BatchLoader(new StreamingDataset(out, { seed: 1 }), { batchSize: 16, resolution: 64, threads: 2 }),
      3,
    );
    for (const b of batches) {
      assert.equal(b.images.shape[0], b.imageSample.length);
      assert.equal(b.images.data.length, b.images.shape[0] * 3 * 64 * 64);
      const data = b.images.data as Float32Array;
      assert.ok(data.every((v) => v >= 0 && v <= 1));
      // Real pictures: not all padding.
      if (b.images.shape[0] > 0) assert.ok(data.some((v) => v > 0.05));
      for (const [i, c] of b.captions.entries())
        assert.equal(c, b.conversations[i].findLast((t) => t.from === 'gpt')?.value ?? '');
    }
  });
});
