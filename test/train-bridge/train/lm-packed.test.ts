// Sequence packing in the LM objective (fastvlm-tiny on lavapipe): a packed batch trains exactly as its samples
// padded one per row — the same loss and every gradient (encoder in train mode, images in the same order).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Engine } from '../../../train-bridge/gpu/engine.ts';
import { ALL_PARTS, FastVLMGpu } from '../../../train-bridge/model/fastvlm-gpu.ts';
import {
  collate,
  collatePacked,
  loadQwen2Tokenizer,
  type TextBatch,
} from '../../../train-bridge/text/index.ts';
import { oracleLayouts, oracleModel, randomImages, toNhwc } from '../model/fastvlm-fixtures.ts';
import { useTrainerSuite } from './trainer-suite.ts';

const suite = useTrainerSuite();

const maxAbs = (a: Float32Array) => a.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
const maxAbsDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, x, i) => Math.max(m, Math.abs(x - (b[i] as number))), 0);

/** Loss and every trainable tensor's gradient of one batch (images in slot order). */
async function lossAndGradients(
  eng: Engine,
  gpu: FastVLMGpu,
  batch: TextBatch,
  images: Float32Array,
  r: number,
) {
  const params = gpu.weights.trainable();
  eng.zeroGrad(params.map((p) => p.tensor));
  const img = eng.upload(images, [batch.imageSlots.length, r, r, 3]);
  const loss = eng.tidy(() => gpu.loss(batch, img));
  eng.backward(loss);
  const value = (await loss.read())[0] as number;
  const hosts = new Map(gpu.model.namedParameters());
  const grads = new Map<string, Float32Array>();
  for (const { name } of params) grads.set(name, (await gpu.weights.gradient(hosts.get(name)!))!);
  img.dispose();
  loss.dispose();
  return { value, grads };
}

test('a packed batch gives the loss and gradients of its samples padded one per row', {
  timeout: 600_000,
}, async () => {
  const { eng } = suite;
  const r = 128; // 4 tokens per image: slots sit at offsets inside the packs
  const ls = await oracleLayouts(r);
  const tok = await loadQwen2Tokenizer();
  const padded = collate(ls, tok.padId);
  // Rows [triplet, triplet] and [multi-turn, text-only, two images]: the same samples, images in the same order.
  const packed = collatePacked([ls.slice(0, 2), ls.slice(2)], tok.padId);
  assert.equal(packed.batch, 2);
  assert.ok(packed.batch * packed.seqLen < padded.batch * padded.seqLen, 'packing leaves fewer positions');
  const raw = randomImages(padded.imageSlots.length, r, 5);
  const images = toNhwc(raw.data, raw.shape);
  const gpu = new FastVLMGpu(eng, oracleModel(11), ALL_PARTS);
  const a = await lossAndGradients(eng, gpu, padded, images, r);
  const b = await lossAndGradients(eng, gpu, packed, images, r);
  assert.ok(
    Math.abs(a.value - b.value) <= 1e-5 * Math.abs(a.value),
    `loss padded ${a.value}, packed ${b.value}`,
  );
  let compared = 0;
  let worst = 0;
  for (const [name, g] of a.grads) {
    const s = maxAbs(g);
    const d = maxAbsDiff(g, b.grads.get(name)!);
    assert.ok(d <= 1e-4 * s + 1e-9, `${name}: packed differs by ${d} (largest entry ${s})`);
    if (s > 0) worst = Math.max(worst, d / s);
    compared++;
  }
  assert.ok(compared > 100, `${compared} tensors compared`);
  process.stdout.write(
    `# padded loss ${a.value}, packed ${b.value}; worst gradient difference ${worst.toExponential(2)} of its tensor's largest entry\n`,
  );
  gpu.dispose();
});
