// The language-model ops the Qwen2 forward needs (embedding, RMSNorm, RoPE, causal GQA attention, SiLU·mul,
// cross-entropy with ignore-index), each one of the engine's dedicated ops, under the names the model code uses.
import type { Engine } from '../gpu/engine.ts';
import * as ops from '../gpu/ops/index.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { IGNORE_INDEX } from '../text/constants.ts';

export { IGNORE_INDEX };

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
   * h [T, D], head [V, D] (`headTransposed`: [D, V]), targets T ids. The engine's chunked lm_head with an
   * online log-sum-exp: at most [T, chunk] logits exist at a time, forward or backward. Returns a scalar
   * [1]; with no target at all, 0 (and zero gradients).
   */
  crossEntropy(h: Tensor, head: Tensor, targets: Int32Array, headTransposed = false): Tensor {
    // Only labelled tokens reach the vocabulary-wide GEMMs (system and user turns, image tokens and padding are
    // most of a batch): their hidden rows are gathered first, which the gather's gradient scatters back.
    const rows: number[] = [];
    for (const [t, id] of targets.entries()) if (id !== IGNORE_INDEX) rows.push(t);
    if (rows.length === 0 || rows.length === targets.length) {
      return ops.lmHeadCrossEntropy(h, head, targets, {
        ignoreIndex: IGNORE_INDEX,
        weightTransposed: headTransposed,
      });
    }
    const labelled = ops.embedding(h, Int32Array.from(rows));
    return ops.lmHeadCrossEntropy(
      labelled,
      head,
      Int32Array.from(rows, (t) => targets[t] as number),
      {
        ignoreIndex: IGNORE_INDEX,
        weightTransposed: headTransposed,
      },
    );
  }
}
