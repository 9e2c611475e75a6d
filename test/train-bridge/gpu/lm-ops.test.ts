// The language-model ops' contracts beyond the selftest's numbers: padded and packed batches give every
// sample exactly what it gets alone, a batch without targets has a zero loss and zero gradients, and bad
// ids, labels or calls fail with errors that name them.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Engine } from '../../../train-bridge/gpu/engine.ts';
import * as ops from '../../../train-bridge/gpu/ops/index.ts';

let eng: Engine;
before(async () => {
  eng = await Engine.create();
});
after(() => eng.destroy());

/** Deterministic values in [−1, 1). */
function values(n: number, seed: number): Float32Array {
  return Float32Array.from(
    { length: n },
    (_, i) => ((Math.imul(i + 1, 2654435761 + 40503 * seed) >>> 0) % 4096) / 2048 - 1,
  );
}

const H = 2;
const d = 8;
const rows = (x: Float32Array, from: number, count: number) => x.slice(from * H * d, (from + count) * H * d);

async function attend(q: Float32Array, k: Float32Array, v: Float32Array, segments: number[]) {
  const T = segments.length;
  return eng.noGrad(() =>
    eng.tidy(() =>
      ops.causalAttention(
        eng.upload(q, [T, H, d]),
        eng.upload(k, [T, 1, d]),
        eng.upload(v, [T, 1, d]),
        Int32Array.from(segments),
      ),
    ),
  );
}

function close(a: Float32Array, b: Float32Array, what: string) {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs((a[i] as number) - (b[i] as number)) < 1e-6, `${what} [${i}]: ${a[i]} vs ${b[i]}`);
}

test('causalAttention: a left-padded, packed batch gives each sample what it gets alone; padding rows are 0', async () => {
  // Sample A (5 tokens) and B (3 tokens), alone and as [pad, pad, A, B, pad].
  const [qa, ka, va] = [values(5 * H * d, 1), values(5 * d, 2), values(5 * d, 3)];
  const [qb, kb, vb] = [values(3 * H * d, 4), values(3 * d, 5), values(3 * d, 6)];
  const alone = async (q: Float32Array, k: Float32Array, v: Float32Array, n: number) => {
    const y = await attend(q, k, v, Array<number>(n).fill(0));
    const out = await y.read();
    y.dispose();
    return out;
  };
  const ya = await alone(qa, ka, va, 5);
  const yb = await alone(qb, kb, vb, 3);
  const cat = (pad: number, ...parts: Float32Array[]) => {
    const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0) + 3 * pad);
    let at = 2 * pad;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };
  const y = await attend(
    cat(H * d, qa, qb),
    cat(d, ka, kb),
    cat(d, va, vb),
    [-1, -1, 7, 7, 7, 7, 7, 3, 3, 3, -1],
  );
  const got = await y.read();
  y.dispose();
  close(rows(got, 2, 5), ya, 'sample A');
  close(rows(got, 7, 3), yb, 'sample B');
  for (const t of [0, 1, 10]) close(rows(got, t, 1), new Float32Array(H * d), `padding row ${t}`);
});

test('lmHeadCrossEntropy: no target gives loss 0 and zero gradients; bad labels name the token', async () => {
  const h = eng.parameter(values(4 * 6, 7), [4, 6]);
  const w = eng.parameter(values(10 * 6, 8), [10, 6]);
  const loss = eng.tidy(() => ops.lmHeadCrossEntropy(h, w, Int32Array.from([-100, -100, -100, -100])));
  eng.backward(loss);
  assert.deepEqual([...(await loss.read())], [0]);
  assert.ok((await h.grad!.read()).every((x) => x === 0));
  assert.ok((await w.grad!.read()).every((x) => x === 0));
  loss.dispose();
  eng.zeroGrad([h, w]);
  assert.throws(
    () => ops.lmHeadCrossEntropy(h, w, Int32Array.from([1, 10, 2, 3])),
    /label 10 at token 1 outside \[0, 10\)/,
  );
  h.dispose();
  w.dispose();
});

test('embedding, rope and decodeAttention refuse what they cannot do, naming it', () => {
  const table = eng.upload(values(5 * 4, 9), [5, 4]);
  assert.throws(
    () => ops.embedding(table, Int32Array.from([0, 5])),
    /id 5 at token 1 outside the table of 5 rows/,
  );
  const x = eng.upload(values(3 * 2 * 4, 10), [3, 2, 4]);
  const angles = ops.ropeTable(eng, Int32Array.from([0, 1]), 4, 1e4);
  assert.throws(
    () => ops.rope(x, angles),
    /rope: x \[3,2,4\] is not \[T, heads, 4\] for a table of 2 tokens/,
  );
  const q = eng.parameter(values(2 * 2 * 4, 11), [2, 2, 4]);
  assert.throws(
    () => ops.decodeAttention(q, x, x, Int32Array.from([0, 1, 0, 4])),
    /query 1 range \[0, 4\) outside the 3 keys/,
  );
  assert.throws(() => ops.decodeAttention(q, x, x, Int32Array.from([0, 1, 0, 2])), /forward only/);
  for (const t of [table, x, angles.cos, angles.sin, q]) t.dispose();
});
