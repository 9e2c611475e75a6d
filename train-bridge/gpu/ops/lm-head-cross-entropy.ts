// lmHeadCrossEntropy(hidden, weight, labels): the language-model loss — logits = hidden·weightᵀ (the
// lm_head, tied to the token embedding in Qwen2-0.5B), then the mean over labelled tokens of
// −log softmax(logits)[label]; tokens labelled ignoreIndex (−100) count for nothing. The vocabulary
// (151,936) is walked in chunks with an online log-sum-exp, so at most [T, chunk] logits exist at a time,
// forward or backward; the backward recomputes each chunk's logits from the saved log-sum-exp and
// accumulates the gradients to hidden (dlogits·W) and to weight (dlogitsᵀ·hidden, one row block per
// chunk). Labels are per position: shifting them for next-token prediction is the caller's job.
import { gemm } from '../gemm/gemm.ts';
import type { GemmShape } from '../gemm/spec.ts';
import type { KernelDef } from '../kernel.ts';
import { grid1d } from '../kernels/elementwise.ts';
import { ROW_MAX_OR_SUM, rowGrid, rowKernel, ROW_WG as WG } from '../kernels/row-kernel.ts';
import { shapeString, type Tensor } from '../tensor.ts';

export interface LmHeadCrossEntropyOptions {
  /** Label that marks a token without a target (default −100, as PyTorch). */
  ignoreIndex?: number;
  /** Vocabulary rows per chunk (default: up to 16 Mi logits per chunk, within one binding). */
  chunk?: number;
  /**
   * `weight` is [D, V] (an untied lm_head uploaded as a linear's [in, out]) instead of [V, D]; its chunks
   * are column windows, so the whole weight must fit one storage binding.
   */
  weightTransposed?: boolean;
}

// ---- kernels
/** Folds one chunk's logits into each row's running max m and Σexp s; picks the target's logit. */
const CHUNK_STATS = rowKernel({
  name: 'ce_chunk_stats',
  uniforms: ['v0'],
  storage: [
    { name: 'logits', access: 'read' },
    { name: 'labels', access: 'read', type: 'i32' },
    { name: 'm', access: 'read_write' },
    { name: 's', access: 'read_write' },
    { name: 'zt', access: 'read_write' },
  ],
  helpers: ROW_MAX_OR_SUM,
  body: /* wgsl */ `  var mx = -3.0e38;
  for (var c = li; c < P.C; c += ${WG}u) { mx = max(mx, logits[base + c]); }
  let mc = row_reduce(mx, li, true);
  var sum = 0.0;
  for (var c = li; c < P.C; c += ${WG}u) { sum += exp(logits[base + c] - mc); }
  let sc = row_reduce(sum, li, false);
  if (li == 0u) {
    let mo = m[row];
    let mn = max(mo, mc);
    s[row] = s[row] * exp(mo - mn) + sc * exp(mc - mn);
    m[row] = mn;
    let lab = labels[row];
    if (lab >= i32(P.v0) && lab < i32(P.v0 + P.C)) { zt[row] = logits[base + u32(lab) - P.v0]; }
  }`,
});

/** lse[t] = m + log s; loss = Σ over labelled t of (lse − z_target) / N, in one workgroup. */
const FINISH: KernelDef = {
  name: 'ce_finish',
  uniforms: ['T', 'invN:f32'],
  storage: [
    { name: 'm', access: 'read' },
    { name: 's', access: 'read' },
    { name: 'zt', access: 'read' },
    { name: 'labels', access: 'read', type: 'i32' },
    { name: 'lse', access: 'read_write' },
    { name: 'loss', access: 'read_write' },
  ],
  body: /* wgsl */ `
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256) fn main(@builtin(local_invocation_index) li: u32) {
  var acc = 0.0;
  for (var t = li; t < P.T; t += 256u) {
    let l = m[t] + log(s[t]);
    lse[t] = l;
    if (labels[t] >= 0) { acc += l - zt[t]; }
  }
  red[li] = acc;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k >>= 1u) {
    if (li < k) { red[li] += red[li + k]; }
    workgroupBarrier();
  }
  if (li == 0u) { loss[0] = red[0] * P.invN; }
}`,
};

/** In place: dlogits = (softmax − onehot(label))·dy/N on labelled rows, 0 on ignored ones. */
const CHUNK_GRAD: KernelDef = {
  name: 'ce_chunk_grad',
  uniforms: ['T', 'C', 'v0', 'invN:f32'],
  storage: [
    { name: 'logits', access: 'read_write' },
    { name: 'labels', access: 'read', type: 'i32' },
    { name: 'lse', access: 'read' },
    { name: 'dy', access: 'read' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= P.T * P.C) { return; }
  let t = i / P.C;
  let lab = labels[t];
  if (lab < 0) { logits[i] = 0.0; return; }
  let hit = select(0.0, 1.0, u32(lab) == P.v0 + i % P.C);
  logits[i] = (exp(logits[i] - lse[t]) - hit) * dy[0] * P.invN;
}`,
};

/** C[T, Vc] (+)= α·op(A)·op(B) with row-major operands; offsets select the chunk's weight rows. */
function gemmCall(
  M: number,
  N: number,
  K: number,
  o: { transA?: boolean; transB?: boolean; lda: number; ldb: number; ldc: number; beta?: number },
): GemmShape {
  return {
    M,
    N,
    K,
    batch: 1,
    transA: !!o.transA,
    transB: !!o.transB,
    lda: o.lda,
    ldb: o.ldb,
    ldc: o.ldc,
    strideA: 0,
    strideB: 0,
    strideC: 0,
    alpha: 1,
    beta: o.beta ?? 0,
  };
}

// ---- forward
export function lmHeadCrossEntropy(
  hidden: Tensor,
  weight: Tensor,
  labels: Int32Array,
  o: LmHeadCrossEntropyOptions = {},
): Tensor {
  const [T, D] = hidden.shape as [number, number];
  const tw = !!o.weightTransposed;
  const V = weight.shape[tw ? 1 : 0] as number;
  if (hidden.rank !== 2 || weight.rank !== 2 || weight.shape[tw ? 0 : 1] !== D || labels.length !== T) {
    throw new Error(
      `lmHeadCrossEntropy: hidden ${shapeString(hidden.shape)}, weight ${shapeString(weight.shape)}, ` +
        `${labels.length} labels (want [T, D], ${tw ? '[D, V]' : '[V, D]'} and T labels)`,
    );
  }
  const ignore = o.ignoreIndex ?? -100;
  const targets = new Int32Array(T);
  let N = 0;
  for (const [t, lab] of labels.entries()) {
    if (lab === ignore) targets[t] = -1;
    else if (Number.isInteger(lab) && lab >= 0 && lab < V) {
      targets[t] = lab;
      N++;
    } else
      throw new Error(`lmHeadCrossEntropy: label ${lab} at token ${t} outside [0, ${V}) and not ${ignore}`);
  }
  const eng = hidden.engine;
  const maxElems = Math.floor(eng.maxBindingBytes / 4) - eng.storageAlign / 4;
  const chunk = Math.max(
    1,
    Math.min(
      V,
      o.chunk ?? Math.floor(Math.min(1 << 24, maxElems) / Math.max(T, 1)),
      Math.floor(maxElems / D),
    ),
  );
  const invN = 1 / Math.max(N, 1);
  const labelsT = eng.uploadBits(targets, [T]);
  const m = eng.fill([T], -3e38);
  const s = eng.zeros([T]);
  const zt = eng.zeros([T]);
  const lse = eng.empty([T]);
  const loss = eng.empty([1]);
  // Where vocabulary entry v0 starts in the weight, and the weight's row pitch.
  const wAt = (v0: number) => (tw ? v0 : v0 * D);
  const ldw = tw ? V : D;
  /** logits[T, rows] of vocabulary entries v0.. into `out`. */
  const chunkLogits = (v0: number, rows: number, out: Tensor) =>
    gemm(gemmCall(T, rows, D, { transB: !tw, lda: D, ldb: ldw, ldc: rows }), hidden, weight, out, {
      b: wAt(v0),
    });
  if (T > 0) {
    for (let v0 = 0; v0 < V; v0 += chunk) {
      const rows = Math.min(chunk, V - v0);
      const logits = eng.empty([T, rows]);
      chunkLogits(v0, rows, logits);
      eng.dispatch(
        CHUNK_STATS,
        [logits.range(), labelsT.range(), m.range(), s.range(), zt.range()],
        { rows: T, C: rows, v0 },
        rowGrid(eng, T),
      );
      logits.dispose();
    }
  }
  eng.dispatch(
    FINISH,
    [m.range(), s.range(), zt.range(), labelsT.range(), lse.range(), loss.range()],
    { T, invN },
    [1],
  );
  for (const t of [m, s, zt]) t.dispose();
  eng.record('lmHeadCrossEntropy', [hidden, weight], loss, [labelsT, lse], (dy, needs) => {
    // ---- gradient, chunk by chunk: dlogits = (softmax − onehot)·dy/N
    const dh = needs[0] ? eng.zeros([T, D]) : undefined;
    if (T === 0) return [dh, needs[1] ? eng.zeros(weight.shape) : undefined];
    const dw = needs[1] ? eng.empty(weight.shape) : undefined;
    for (let v0 = 0; v0 < V; v0 += chunk) {
      const rows = Math.min(chunk, V - v0);
      const dl = eng.empty([T, rows]);
      chunkLogits(v0, rows, dl);
      eng.dispatch(
        CHUNK_GRAD,
        [dl.range(), labelsT.range(), lse.range(), dy.range()],
        { T, C: rows, v0, invN },
        grid1d(eng, T * rows),
      );
      // dh += dl·W_chunk; dW_chunk = dlᵀ·hidden (stored transposed: hiddenᵀ·dl).
      if (dh) {
        const sh = gemmCall(T, D, rows, { transB: tw, lda: rows, ldb: ldw, ldc: D, beta: 1 });
        gemm(sh, dl, weight, dh, { b: wAt(v0) });
      }
      if (dw && tw) {
        const sh = gemmCall(D, rows, T, { transA: true, lda: D, ldb: rows, ldc: V });
        gemm(sh, hidden, dl, dw, { c: v0 });
      } else if (dw) {
        const sh = gemmCall(rows, D, T, { transA: true, lda: rows, ldb: D, ldc: D });
        gemm(sh, dl, hidden, dw, { c: v0 * D });
      }
      dl.dispose();
    }
    return [dh, dw];
  });
  if (!eng.gradEnabled || !loss.requiresGrad) {
    labelsT.dispose();
    lse.dispose();
  }
  return loss;
}
