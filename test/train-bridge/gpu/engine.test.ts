// Engine semantics the model relies on: tape bookkeeping, gradient accumulation, tidy, noGrad, views,
// u8 upload, and shape errors that name the op.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Engine } from '../../../train-bridge/gpu/engine.ts';
import * as ops from '../../../train-bridge/gpu/ops/index.ts';

let eng: Engine;
before(async () => {
  eng = await Engine.create();
});
after(() => eng.destroy());

const close = (a: ArrayLike<number>, b: number[]) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++)
    assert.ok(Math.abs((a[i] as number) - (b[i] as number)) < 1e-5, `[${i}] ${a[i]} vs ${b[i]}`);
};

test('a parameter used twice gets the sum of both paths; backward accumulates until zeroGrad', async () => {
  const w = eng.parameter([1, 2, 3], [3]);
  const x = eng.upload([4, 5, 6], [3]);
  for (let i = 0; i < 2; i++) {
    // y = sum(w·x + w) → dy/dw = x + 1
    const y = eng.tidy(() => ops.sum(ops.add(ops.mul(w, x), w)));
    eng.backward(y);
    y.dispose();
  }
  close(await w.grad!.read(), [10, 12, 14]);
  assert.equal(eng.tapeLength, 0);
  eng.zeroGrad([w]);
  assert.equal(w.grad, undefined);
  x.dispose();
  w.dispose();
});

test('tidy frees intermediates but keeps what the tape needs until backward', async () => {
  const w = eng.parameter([0.5, -1], [2]);
  const before = eng.pool.inUseBytes;
  const y = eng.tidy(() => ops.sum(ops.gelu(ops.scale(w, 3))));
  // gelu's input is still held by the tape, so its buffer is still in use.
  assert.ok(eng.pool.inUseBytes > before + 256);
  eng.backward(y);
  y.dispose();
  const g = await w.grad!.read();
  // d/dw gelu(3w)·3 at w = 0.5 and −1
  const dgelu = (x: number) =>
    0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
  close(g, [3 * dgelu(1.5), 3 * dgelu(-3)]);
  eng.zeroGrad([w]);
  w.dispose();
  assert.equal(eng.pool.inUseBytes, before - 256);
});

test('noGrad records nothing and reshape views share storage', async () => {
  const w = eng.parameter([1, 2, 3, 4, 5, 6], [2, 3]);
  const y = eng.noGrad(() => ops.reshape(w, [3, 2]));
  assert.equal(eng.tapeLength, 0);
  assert.equal(y.storage, w.storage);
  close(await y.read(), [1, 2, 3, 4, 5, 6]);
  y.dispose();
  close(await w.read(), [1, 2, 3, 4, 5, 6]);
  w.dispose();
});

test('uploadU8 converts bytes on the GPU', async () => {
  const t = eng.uploadU8(Uint8Array.from([0, 1, 128, 255, 7]), [5], { scale: 1 / 255, shift: -0.5 });
  close(
    await t.read(),
    [0, 1, 128, 255, 7].map((v) => v / 255 - 0.5),
  );
  t.dispose();
});

test('uploads take SharedArrayBuffer memory (the loader’s batch tensors), also past one staging chunk', async () => {
  const bytes = new Uint8Array(new SharedArrayBuffer(9), 2, 7);
  bytes.set([0, 1, 2, 3, 4, 5, 255]);
  const u8 = eng.uploadU8(bytes, [7]);
  close(await u8.read(), [0, 1, 2, 3, 4, 5, 255]);
  u8.dispose();
  // 18 MiB of f32: more than the 16 MiB staging chunk, so the copy goes in two writes.
  const n = (18 << 20) / 4;
  const f32 = new Float32Array(new SharedArrayBuffer(n * 4));
  for (let i = 0; i < n; i++) f32[i] = (i % 1000) - 500;
  const t = eng.upload(f32, [n]);
  const back = await t.read();
  t.dispose();
  assert.equal(back.length, n);
  for (const i of [0, 1, 999, (16 << 20) / 4 - 1, (16 << 20) / 4, n - 1])
    assert.equal(back[i], (i % 1000) - 500, `element ${i}`);
  const bits = eng.uploadBits(new Int32Array(new SharedArrayBuffer(12)).fill(-7), [3]);
  assert.deepEqual(Array.from(new Int32Array((await bits.read()).buffer)), [-7, -7, -7]);
  bits.dispose();
});

test('shape errors name the op and the shapes', () => {
  const a = eng.zeros([2, 3]);
  const b = eng.zeros([2]);
  assert.throws(() => ops.add(a, b), /add: \[2\] does not broadcast onto \[2,3\]/);
  assert.throws(() => ops.matmul(a, a), /matmul: cannot multiply \[2,3\] by \[2,3\]/);
  assert.throws(() => ops.conv2d(eng.zeros([1, 4, 4, 3]), eng.zeros([3, 3, 2, 4])), /conv2d: .*HWIO/);
  a.dispose();
  b.dispose();
});

function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 (1.5e-7), enough for a 1e-5 comparison.
  const s = Math.sign(x);
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return s * (1 - p * Math.exp(-a * a));
}
