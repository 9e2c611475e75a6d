// The language-model ops against the dense compositions they replace, same run, same adapter: causal
// attention (tiled, online softmax) against softmax(q·kᵀ + mask)·v per head from matmul/softmax, and the
// chunked lm_head cross-entropy against full logits + softmax; forward + backward each, plus the bytes
// each keeps alive for its backward (engine pool, measured). Usage: npx tsx bench/lm-ops.ts
// [--tokens 512] [--heads 2] [--head-dim 64] [--vocab 8192] [--hidden 256] [--reps 3]
import { parseArgs } from 'node:util';
import { Engine } from '../train-bridge/gpu/engine.ts';
import * as ops from '../train-bridge/gpu/ops/index.ts';
import type { Tensor } from '../train-bridge/gpu/tensor.ts';

const { values } = parseArgs({
  options: {
    tokens: { type: 'string', default: '512' },
    heads: { type: 'string', default: '2' },
    'head-dim': { type: 'string', default: '64' },
    vocab: { type: 'string', default: '8192' },
    hidden: { type: 'string', default: '256' },
    reps: { type: 'string', default: '3' },
  },
});
const T = Number(values.tokens);
const H = Number(values.heads);
const hd = Number(values['head-dim']);
const V = Number(values.vocab);
const D = Number(values.hidden);
const reps = Number(values.reps);

const eng = await Engine.create({ log: (l) => console.log(l) });

function rand(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (Math.random() - 0.5) * scale;
  return a;
}

/** Mean seconds of a forward + backward after one warm-up, and the pool bytes the tape held after forward. */
async function measure(params: Tensor[], forward: () => Tensor): Promise<{ s: number; heldBytes: number }> {
  let heldBytes = 0;
  const step = () => {
    const before = eng.pool.inUseBytes;
    const y = eng.tidy(() => ops.sum(forward()));
    heldBytes = eng.pool.inUseBytes - before;
    eng.backward(y);
    y.dispose();
    eng.zeroGrad(params);
  };
  step();
  await eng.sync();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) step();
  await eng.sync();
  return { s: (performance.now() - t0) / 1000 / reps, heldBytes };
}

function row(what: string, ours: { s: number; heldBytes: number }, dense: { s: number; heldBytes: number }) {
  const mb = (b: number) => (b / 2 ** 20).toFixed(1);
  console.log(
    [
      what,
      (ours.s * 1000).toFixed(1),
      (dense.s * 1000).toFixed(1),
      (dense.s / ours.s).toFixed(2),
      mb(ours.heldBytes),
      mb(dense.heldBytes),
    ].join('\t'),
  );
}

console.log(['case', 'ours ms', 'dense ms', 'dense/ours', 'ours MiB held', 'dense MiB held'].join('\t'));

// Attention: one sample of T tokens, H query heads sharing one K/V head (the dense side repeats it).
{
  const q = eng.parameter(rand(T * H * hd), [T, H, hd]);
  const k = eng.parameter(rand(T * hd), [T, 1, hd]);
  const v = eng.parameter(rand(T * hd), [T, 1, hd]);
  const segments = new Int32Array(T);
  const mask = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) mask[i * T + j] = -1e9;
  const maskT = eng.keep(eng.upload(mask, [T, T]));
  const ours = await measure([q, k, v], () => ops.causalAttention(q, k, v, segments));
  const dense = await measure([q, k, v], () => {
    const qh = ops.permute(q, [1, 0, 2]); // [H, T, d]
    const k2 = ops.reshape(k, [T, hd]);
    const v2 = ops.reshape(v, [T, hd]);
    const scores = ops.add(ops.matmul(qh, k2, { transB: true, alpha: 1 / Math.sqrt(hd) }), maskT);
    return ops.matmul(ops.softmax(scores), v2);
  });
  row(`causal attention T=${T} Hq=${H} Hkv=1 d=${hd}`, ours, dense);
  for (const t of [q, k, v, maskT]) t.dispose();
}

// Cross-entropy over V entries: chunked lm_head against full [T, V] logits and softmax.
{
  const h = eng.parameter(rand(T * D), [T, D]);
  const w = eng.parameter(rand(V * D, 0.1), [V, D]);
  const labels = Int32Array.from({ length: T }, (_, t) => (t % 5 === 0 ? -100 : (t * 7919) % V));
  const picks = new Float32Array(T * V);
  let n = 0;
  labels.forEach((l, t) => {
    if (l >= 0) {
      picks[t * V + l] = 1;
      n++;
    }
  });
  const pickT = eng.keep(eng.upload(picks, [T, V]));
  const chunk = Math.max(1, Math.floor(V / 8));
  const ours = await measure([h, w], () => ops.lmHeadCrossEntropy(h, w, labels, { chunk }));
  const dense = await measure([h, w], () =>
    // The dense cost: all [T, V] logits, their softmax and the pick at the labels, forward and backward
    // (the engine has no log op; a log over the T picked values would cost nothing next to these).
    ops.scale(ops.sum(ops.mul(ops.softmax(ops.matmul(h, w, { transB: true })), pickT)), -1 / n),
  );
  row(`cross-entropy T=${T} D=${D} V=${V} (ours in 8 chunks)`, ours, dense);
  for (const t of [h, w, pickT]) t.dispose();
}
console.log(`adapter: ${eng.ctx.adapter.description || eng.ctx.adapter.device}; reps ${reps}`);
eng.destroy();
