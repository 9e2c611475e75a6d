// The language-model ops the Qwen2 forward needs (embedding, RMSNorm, RoPE, causal GQA attention, SiLU·mul,
// cross-entropy with ignore-index): the engine's dedicated ops where it has them, the rest composed from its tested
// primitives (exact, and differentiable through the engine's own gradient rules) until fused kernels replace them.
import type { Engine } from '../gpu/engine.ts';
import { binaryKernel, runBinary, runUnary, unaryKernel } from '../gpu/kernels/elementwise.ts';
import * as ops from '../gpu/ops/index.ts';
import type { Tensor } from '../gpu/tensor.ts';

/** Labels at this value take no part in the loss (Hugging Face's and LLaVA's IGNORE_INDEX). */
export const IGNORE_INDEX = -100;

/** Keys at this additive bias are masked out of attention (large and finite: a fully masked row stays NaN-free). */
const MASKED = -1e9;

/** Rows of logits per cross-entropy chunk: never all [tokens, vocab] logits at once. */
const CE_ROWS = 64;

const LOG = unaryKernel('log', 'log(v)');
const DIV = binaryKernel('div', 'vb / va');

/** ln x, elementwise; d/dx = 1/x. */
function log(x: Tensor): Tensor {
  const y = runUnary(LOG, x);
  x.engine.record('log', [x], y, [x], (dy) => [runBinary(DIV, x, dy)]);
  return y;
}

/** The attention layout of one micro-batch: B sequences of L positions, which keys each may see. */
export interface AttentionLayout {
  batch: number;
  seqLen: number;
  /** B·L: 1 where a token is real, 0 for padding (keys at 0 are never attended to). */
  keyValid: Uint8Array;
  /** Optional B·L segment ids (packing): a query sees keys of its own segment only. */
  segments?: Int32Array;
}

export class LmOps {
  private readonly cache = new Map<string, Tensor>();

  constructor(readonly eng: Engine) {}

  private constant(key: string, make: () => [Float32Array, number[]]): Tensor {
    let t = this.cache.get(key);
    if (!t) {
      const [data, shape] = make();
      t = this.eng.keep(this.eng.upload(data, shape));
      this.cache.set(key, t);
    }
    return t;
  }

  dispose(): void {
    for (const t of this.cache.values()) t.dispose();
    this.cache.clear();
  }

  /** Rows of `table` [V, D] at `ids` → [ids.length, D]; id −1 gives a zero row. Gradient: a keyed gather, no atomics. */
  embed(table: Tensor, ids: Int32Array): Tensor {
    return ops.embedding(table, ids);
  }

  /** Qwen2RMSNorm over the last dim: x / √(mean(x²) + ε) · γ. */
  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
    return ops.rmsNorm(x, weight, eps);
  }

  /**
   * Rotary position embedding of x [T, H, hd] at per-token positions: x·cos + rotate_half(x)·sin with
   * inv_freq = θ^(−2i/hd) and the halves layout of Hugging Face's Qwen2 (cos = [cos(f), cos(f)]).
   */
  rope(x: Tensor, positions: Int32Array, theta: number): Tensor {
    const [T, H, hd] = x.shape as [number, number, number];
    if (positions.length !== T) throw new Error(`rope: ${positions.length} positions for ${T} tokens`);
    const half = hd / 2;
    const rotate = this.constant(`rotate-half:${hd}`, () => {
      // y = x·R: y[j] = −x[j + hd/2] for j < hd/2, x[j − hd/2] after.
      const r = new Float32Array(hd * hd);
      for (let j = 0; j < half; j++) {
        r[(j + half) * hd + j] = -1;
        r[j * hd + j + half] = 1;
      }
      return [r, [hd, hd]];
    });
    const { cos, sin } = rotaryTables(positions, H, hd, theta);
    const cosT = this.eng.upload(cos, [T, H, hd]);
    const sinT = this.eng.upload(sin, [T, H, hd]);
    const rotated = ops.reshape(ops.matmul(ops.reshape(x, [T * H, hd]), rotate), [T, H, hd]);
    return ops.add(ops.mul(x, cosT), ops.mul(rotated, sinT));
  }

  /**
   * Causal grouped-query attention: q [B, L, H, hd], k and v [B, L, KV, hd] (query head h reads KV head
   * h / (H/KV), as repeat_kv does) → [B, L, H, hd]. Scores of masked keys get a −1e9 bias before the softmax.
   */
  attention(q: Tensor, k: Tensor, v: Tensor, layout: AttentionLayout, scale: number): Tensor {
    const [B, L, H, hd] = q.shape as [number, number, number, number];
    const KV = k.shape[2] as number;
    const heads = (t: Tensor, n: number) =>
      ops.reshape(ops.permute(this.expandHeads(t, n, H), [0, 2, 1, 3]), [B * H, L, hd]);
    const qh = ops.reshape(ops.permute(q, [0, 2, 1, 3]), [B * H, L, hd]);
    const kh = heads(k, KV);
    const vh = heads(v, KV);
    const mask = this.eng.upload(attentionBias(layout, H), [B * H, L, L]);
    const scores = ops.add(ops.matmul(qh, kh, { transB: true, alpha: scale }), mask);
    const out = ops.matmul(ops.softmax(scores), vh);
    return ops.permute(ops.reshape(out, [B, H, L, hd]), [0, 2, 1, 3]);
  }

  /** [B, L, KV, hd] → [B, L, H, hd] with head h = KV head h / (H/KV): a 0/1 matmul, so the gradient sums the copies. */
  private expandHeads(t: Tensor, KV: number, H: number): Tensor {
    if (KV === H) return t;
    const [B, L, , hd] = t.shape as [number, number, number, number];
    const rep = H / KV;
    const expand = this.constant(`expand:${KV}:${H}`, () => {
      const e = new Float32Array(KV * H);
      for (let h = 0; h < H; h++) e[Math.floor(h / rep) * H + h] = 1;
      return [e, [KV, H]];
    });
    const lastKv = ops.reshape(ops.permute(t, [0, 1, 3, 2]), [B * L * hd, KV]);
    return ops.permute(ops.reshape(ops.matmul(lastKv, expand), [B, L, hd, H]), [0, 1, 3, 2]);
  }

  /** silu(gate)·up (SwiGLU). */
  siluMul(gate: Tensor, up: Tensor): Tensor {
    return ops.siluMul(gate, up);
  }

  /**
   * Mean cross-entropy of next-token targets over the tokens whose target is not IGNORE_INDEX: hidden
   * h [T, D], head [V, D] (`headTransposed`: [D, V]), targets T ids. Logits are made CE_ROWS rows at a time.
   * Returns a scalar [1]; with no target at all, 0 (still differentiable: a zero multiple of h).
   */
  crossEntropy(h: Tensor, head: Tensor, targets: Int32Array, headTransposed = false): Tensor {
    const V = (headTransposed ? head.shape[1] : head.shape[0]) as number;
    const rows: number[] = [];
    for (let t = 0; t < targets.length; t++) {
      const id = targets[t] as number;
      if (id === IGNORE_INDEX) continue;
      if (id < 0 || id >= V)
        throw new Error(`crossEntropy: target ${id} at token ${t} outside the vocabulary of ${V}`);
      rows.push(t);
    }
    if (rows.length === 0) return ops.scale(ops.sum(h), 0);
    let total: Tensor | undefined;
    for (let s = 0; s < rows.length; s += CE_ROWS) {
      const chunk = rows.slice(s, s + CE_ROWS);
      const hs = this.embed(h, Int32Array.from(chunk));
      const logits = ops.matmul(hs, head, { transB: !headTransposed });
      const p = ops.reshape(ops.softmax(logits), [chunk.length * V, 1]);
      const picked = this.embed(
        p,
        Int32Array.from(chunk, (t, i) => i * V + (targets[t] as number)),
      );
      const part = ops.sum(log(picked));
      total = total ? ops.add(total, part) : part;
    }
    return ops.scale(total!, -1 / rows.length);
  }
}

/** cos and sin tables [T, H, hd] of Hugging Face's rotary embedding (float32 inv_freq and angles, as it computes them). */
export function rotaryTables(
  positions: Int32Array,
  heads: number,
  hd: number,
  theta: number,
): { cos: Float32Array; sin: Float32Array } {
  const half = hd / 2;
  const invFreq = Float32Array.from({ length: half }, (_, i) => 1 / theta ** ((2 * i) / hd));
  const T = positions.length;
  const cos = new Float32Array(T * heads * hd);
  const sin = new Float32Array(T * heads * hd);
  const angle = new Float32Array(1);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < hd; i++) {
      angle[0] = (positions[t] as number) * (invFreq[i % half] as number);
      const c = Math.cos(angle[0] as number);
      const s = Math.sin(angle[0] as number);
      for (let h = 0; h < heads; h++) {
        cos[(t * heads + h) * hd + i] = c;
        sin[(t * heads + h) * hd + i] = s;
      }
    }
  }
  return { cos, sin };
}

/** The additive score bias [B·H, L, L]: 0 where query i may attend key j (j ≤ i, key real, same segment), else −1e9. */
export function attentionBias(layout: AttentionLayout, heads: number): Float32Array {
  const { batch: B, seqLen: L, keyValid, segments } = layout;
  const out = new Float32Array(B * heads * L * L);
  for (let b = 0; b < B; b++) {
    const plane = new Float32Array(L * L);
    for (let i = 0; i < L; i++) {
      for (let j = 0; j < L; j++) {
        const ok =
          j <= i && keyValid[b * L + j] === 1 && (!segments || segments[b * L + i] === segments[b * L + j]);
        plane[i * L + j] = ok ? 0 : MASKED;
      }
    }
    for (let h = 0; h < heads; h++) out.set(plane, (b * heads + h) * L * L);
  }
  return out;
}
