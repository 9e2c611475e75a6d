// The training loop's pair stream: images preprocessed in the loader's worker threads match the single-image
// reference, the two pixel buffers alternate, and a broken image names its sample.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type LoaderSample, StreamingDataset } from '../../../train-bridge/loader/dataset.ts';
import { squareRgb } from '../../../train-bridge/loader/preprocess.ts';
import { PreprocessPool } from '../../../train-bridge/loader/preprocess-pool.ts';
import { PairStream } from '../../../train-bridge/train/pairs.ts';
import { trainPairsMixture } from './fixtures.ts';

const text = { buckets: 4096, embedDim: 64, maxTokens: 16 };

async function openDataset(): Promise<StreamingDataset> {
  const ds = new StreamingDataset(await trainPairsMixture(), { seed: 3 });
  await ds.open();
  return ds;
}

test('pair pixels equal the reference pad + bicubic resize, in two alternating buffers', async () => {
  const R = 48;
  const plane = R * R * 3;
  const stream = new PairStream(await openDataset(), { resolution: R, text, threads: 2 });
  // The same samples, in the same order, straight from the dataset for the reference.
  const reference = await openDataset();
  reference.setEpoch(0);
  const samples: LoaderSample[] = [];
  for await (const s of reference) {
    if (s.images.length > 0) samples.push(s);
    if (samples.length === 9) break;
  }
  try {
    const batches = [await stream.next(3), await stream.next(3)];
    assert.notEqual(batches[0].pixels.buffer, batches[1].pixels.buffer, 'a held batch is not overwritten');
    for (const [b, batch] of batches.entries()) {
      assert.equal(batch.pixels.length, 3 * plane);
      for (let i = 0; i < 3; i++) {
        const s = samples[b * 3 + i];
        assert.equal(batch.sampleIds[i], s.id);
        const want = (await squareRgb(s.images[0].bytes, R, [0, 0, 0], 'cubic')).pixels;
        assert.deepEqual(batch.pixels.subarray(i * plane, (i + 1) * plane), want, `${s.id}`);
      }
    }
    const third = await stream.next(3);
    assert.equal(third.pixels.buffer, batches[0].pixels.buffer, 'the third batch reuses the first buffer');
    assert.deepEqual(
      third.sampleIds,
      samples.slice(6, 9).map((s) => s.id),
    );
  } finally {
    await stream.close();
  }
});

test('an image that does not decode fails the batch with the sample id; a shared pool stays open', async () => {
  const ds = await openDataset();
  const pool = new PreprocessPool(1);
  const stream = new PairStream(ds, { resolution: 32, text, pool });
  // Corrupt the bytes of every sample the stream reads.
  const iterate = ds[Symbol.asyncIterator].bind(ds);
  ds[Symbol.asyncIterator] = async function* () {
    for await (const s of iterate())
      yield { ...s, images: s.images.map((im) => ({ ...im, bytes: Uint8Array.from([0xff, 0xd8, 1, 2]) })) };
  };
  try {
    await assert.rejects(stream.next(2), /sample \S+: image does not decode/);
    await stream.close();
    const ok = await new PairStream(await openDataset(), { resolution: 32, text, pool }).next(1);
    assert.equal(ok.pixels.length, 32 * 32 * 3);
  } finally {
    await pool.close();
  }
});
