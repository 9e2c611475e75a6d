// Greedy decoding with the KV cache against decoding without one (the whole sequence through the decoder for every
// new token): the same logits at every step and the same tokens.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Engine } from '../../../train-bridge/gpu/engine.ts';
import { generateGreedy } from '../../../train-bridge/model/fastvlm-generate.ts';
import { FastVLMGpu, type LmBatch } from '../../../train-bridge/model/fastvlm-gpu.ts';
import { loadQwen2Tokenizer } from '../../../train-bridge/text/index.ts';
import { promptLayout } from '../../../train-bridge/train/caption.ts';
import { oracleModel, randomImages, toNhwc } from './fastvlm-fixtures.ts';

let eng: Engine;
before(async () => {
  eng = await Engine.create();
});
after(() => eng.destroy());

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if ((a[i] as number) > (a[best] as number)) best = i;
  return best;
}

test('KV-cache decoding gives the tokens of full-sequence decoding', async () => {
  const gpu = new FastVLMGpu(eng, oracleModel(3), { vision: false, projector: false, lm: false });
  const tok = await loadQwen2Tokenizer();
  const layout = promptLayout(tok, 'What is in this photo?', 1, 128);
  const prompt = layout.tokenIds.subarray(0, layout.length);
  assert.equal(layout.imageSlots.length, 1);
  assert.equal(layout.imageSlots[0]!.count, 4);
  const img = randomImages(1, 128, 2);
  const images = eng.upload(toNhwc(img.data, img.shape), [1, 128, 128, 3]);
  const slots = layout.imageSlots.map((s) => ({ sample: 0, start: s.start, count: s.count }));
  const cachedLogits: Float32Array[] = [];
  const cached = await generateGreedy(gpu, {
    promptIds: prompt,
    imageSlots: slots,
    images,
    maxNewTokens: 6,
    stopIds: [],
    onLogits: (_, l) => cachedLogits.push(l),
  });
  assert.equal(cached.length, 6);

  const full: number[] = [];
  for (let i = 0; i < 6; i++) {
    const ids = Int32Array.from([...prompt, ...full]);
    const L = ids.length;
    const batch: LmBatch = {
      batch: 1,
      seqLen: L,
      tokenIds: ids,
      labels: new Int32Array(L),
      positionIds: Int32Array.from({ length: L }, (_, j) => j),
      attentionMask: new Uint8Array(L).fill(1),
      imageSlots: slots,
    };
    const logits = eng.noGrad(() =>
      eng.tidy(() => {
        const x = gpu.inputEmbeddings(batch, gpu.imageTokens(images, 'eval'));
        return gpu.logitsAt(gpu.decode(x, batch), Int32Array.of(L - 1));
      }),
    );
    const values = await logits.read();
    full.push(argmax(values));
    // Each step's logits, not only its choice: the cache path computes the same numbers.
    let diff = 0;
    let scale = 0;
    for (let j = 0; j < values.length; j++) {
      diff = Math.max(diff, Math.abs((values[j] as number) - (cachedLogits[i]![j] as number)));
      scale = Math.max(scale, Math.abs(values[j] as number));
    }
    assert.ok(diff <= 1e-4 * scale, `step ${i}: logits differ by ${diff} (scale ${scale})`);
    logits.dispose();
  }
  assert.deepEqual(cached, full);
  images.dispose();
  gpu.dispose();
});
