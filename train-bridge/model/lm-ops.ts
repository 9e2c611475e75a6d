// The language-model ops the Qwen2 forward needs (embedding, RMSNorm, RoPE, causal GQA attention, SiLU·mul,
// cross-entropy with ignore-index): the engine's dedicated ops where it has them, the rest composed from its tested
// primitives (exact, and differentiable through the engine's own gradient rules) until fused kernels replace them.
import type { Engine } from '../gpu/engine.ts';
import { binaryKernel, runBinary, runUnary, unaryKernel } from '../gpu/kernels/elementwise.ts';
import * as ops from '../gpu/ops/index.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { IGNORE_INDEX } from '../text/constants.ts';

export { IGNORE_INDEX };

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

export class LmOps {
  constructor(readonly eng: Engine) {}

  /** Rows of `table` [V, D] at `ids` → [ids.length, D]; id −1 gives a zero row. Gradient: a keyed gather, no atomics. */
  embed(table: Tensor, ids: Int32Array): Tensor {
    return ops.embedding(table, ids);
  }

  /** Qwen2RMSNorm over the last dim: x / √(mean(x²) + ε) · γ. */
  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
    return ops.rmsNorm(x, weight, eps);
  }

  /** The rotary angles of a batch's per-token positions, made once and shared by every layer's q and k. */
  ropeTable(positions: Int32Array, headDim: number, theta: number): ops.RopeTable {
    return ops.ropeTable(this.eng, positions, headDim, theta);
  }

  /** Rotary position embedding of x [T, heads, hd] (Qwen2's rotate_half convention). */
  rope(x: Tensor, table: ops.RopeTable): Tensor {
    return ops.rope(x, table);
  }

  /**
   * Causal grouped-query attention over [T, heads, hd] (query head h reads KV head ⌊h·KV/H⌋, as repeat_kv):
   * a token sees the earlier tokens of its own segment (sample); segment −1 is padding.
   */
  attention(q: Tensor, k: Tensor, v: Tensor, segments: Int32Array, scale: number): Tensor {
    return ops.causalAttention(q, k, v, segments, { scale });
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
