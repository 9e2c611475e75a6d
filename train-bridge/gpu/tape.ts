// Reverse-mode autodiff over the recorded tape: each entry holds its op's one gradient rule; backward
// walks entries newest-first, sums gradients that reach a tensor from several uses, and leaves the
// parameters' gradients in `param.grad` (accumulating across calls until zeroGrad). Sums use the engine's
// own add kernel, never the `add` op: the tape sits below the ops. A rule may instead add its gradient into
// the one already there (`into`), saving that add's dispatch.
import { binaryKernel, runBinary } from './kernels/elementwise.ts';
import { shapeString, type Tensor, type TensorEngine } from './tensor.ts';

const ACCUMULATE = binaryKernel('add', 'va + vb');

/** a + b for two gradients of the same shape (recorded nowhere: backward runs in no-grad mode). */
function accumulate(a: Tensor, b: Tensor): Tensor {
  return runBinary(ACCUMULATE, a, b);
}

export interface TapeEntry {
  op: string;
  inputs: Tensor[];
  output: Tensor;
  /** Inputs and saved tensors the gradient rule reads; kept alive until the tape is cleared. */
  held: Tensor[];
  grad: GradRule;
}

/**
 * An op's gradient rule: the gradients of its inputs (undefined where `needs` is false). `into[j]`, when
 * given, is input j's gradient so far, owned by the tape alone: the rule may write the sum `into[j] + its
 * gradient` into it in place (the same additions as the tape's sum: a + b, one rounding) and return into[j].
 */
export type GradRule = (
  dy: Tensor,
  needs: boolean[],
  into: readonly (Tensor | undefined)[],
) => (Tensor | undefined)[];

/** The recorded ops of the current forward pass, and the tensors their gradient rules still need. */
export class Tape {
  private entries: TapeEntry[] = [];

  constructor(private readonly eng: TensorEngine) {}

  get length(): number {
    return this.entries.length;
  }

  push(entry: Omit<TapeEntry, 'held'>, saved: Tensor[]): void {
    const held = [...new Set([...entry.inputs, ...saved])];
    for (const t of held) t.tapeRefs++;
    this.entries.push({ ...entry, held });
  }

  /** Runs backward from y over the entries so far, then releases them. */
  backward(y: Tensor, dy?: Tensor): void {
    const tape = this.take();
    try {
      runBackward(this.eng, tape, y, dy);
    } finally {
      release(tape);
    }
  }

  /** Drops the entries without a backward pass. */
  clear(): void {
    release(this.take());
  }

  private take(): TapeEntry[] {
    const tape = this.entries;
    this.entries = [];
    return tape;
  }
}

function release(tape: TapeEntry[]): void {
  for (const e of tape) for (const t of e.held) t.releaseTapeRef();
}

function runBackward(eng: TensorEngine, tape: TapeEntry[], y: Tensor, dy?: Tensor): void {
  if (!y.requiresGrad) throw new Error('backward: the output does not depend on any parameter');
  if (dy && dy.size !== y.size) {
    throw new Error(`backward: seed ${shapeString(dy.shape)} does not match output ${shapeString(y.shape)}`);
  }
  // Gradient rules may return their incoming gradient unchanged (add) or one tensor for several inputs,
  // so gradient tensors are reference-counted rather than owned by one slot.
  const refs = new Map<Tensor, number>();
  const own = (t: Tensor) => {
    eng.keep(t);
    refs.set(t, (refs.get(t) ?? 0) + 1);
  };
  const drop = (t: Tensor) => {
    const n = (refs.get(t) ?? 0) - 1;
    if (n > 0) refs.set(t, n);
    else {
      refs.delete(t);
      if (t !== dy) t.dispose();
    }
  };
  const grads = new Map<number, Tensor>();
  eng.noGrad(() => {
    const seed = dy ?? eng.fill(y.shape, 1);
    own(seed);
    grads.set(y.id, seed);
    const params = new Map<number, Tensor>();
    for (let i = tape.length - 1; i >= 0; i--) {
      const e = tape[i] as TapeEntry;
      const g = grads.get(e.output.id);
      if (!g) continue;
      grads.delete(e.output.id);
      const needs = e.inputs.map((t) => t.requiresGrad);
      // A gradient so far may be written in place when nothing else can see it: one reference, its own
      // buffer (no reshape view shares it), not the caller's seed, and an input that appears once.
      const into = e.inputs.map((inp, j) => {
        const prev = grads.get(inp.id);
        const once = e.inputs.filter((t) => t === inp).length === 1;
        return needs[j] && once && prev && prev !== dy && refs.get(prev) === 1 && prev.storage.refs === 1
          ? prev
          : undefined;
      });
      const inputGrads = eng.tidy(() => e.grad(g, needs, into));
      for (const gi of inputGrads) if (gi) own(gi);
      for (const [j, inp] of e.inputs.entries()) {
        const gi = inputGrads[j];
        if (!gi) continue;
        if (!needs[j]) {
          drop(gi);
          continue;
        }
        if (gi.size !== inp.size) {
          throw new Error(
            `gradient of ${e.op} input ${j}: ${shapeString(gi.shape)} for ${shapeString(inp.shape)}`,
          );
        }
        if (inp.kept) params.set(inp.id, inp);
        const prev = grads.get(inp.id);
        if (prev === gi && into[j] === gi)
          drop(gi); // the rule added into it
        else if (prev) {
          const sum = accumulate(prev, gi);
          own(sum);
          drop(prev);
          drop(gi);
          grads.set(inp.id, sum);
        } else grads.set(inp.id, gi);
      }
      drop(g);
    }
    for (const p of params.values()) {
      const g = grads.get(p.id);
      if (!g) continue;
      grads.delete(p.id);
      if (p.grad) {
        const sum = eng.keep(accumulate(p.grad, g));
        p.grad.dispose();
        p.grad = sum;
        drop(g);
      } else if ((refs.get(g) ?? 0) > 1) {
        // The same tensor is another parameter's gradient too: give this one its own copy.
        p.grad = eng.keep(eng.clone(g));
        drop(g);
      } else {
        refs.delete(g);
        p.grad = g;
      }
    }
    for (const g of grads.values()) drop(g);
  });
}
