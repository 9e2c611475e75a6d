// Tensor lifetimes and grad mode: tidy scopes dispose what a function made except what it returns and
// kept tensors (parameters, optimiser state); noGrad turns recording off for a while.
import { Tensor } from './tensor.ts';

export type TensorTree =
  | Tensor
  | TensorTree[]
  | { [key: string]: TensorTree }
  | number
  | string
  | boolean
  | undefined
  | null
  // biome-ignore lint/suspicious/noConfusingVoidType: lets tidy take callbacks that return nothing
  | void;

export class Scopes {
  private readonly stack: Set<Tensor>[] = [];
  private noGradDepth = 0;

  /** Puts a tensor into the innermost scope (no-op outside any). */
  track(t: Tensor): Tensor {
    this.stack.at(-1)?.add(t);
    return t;
  }

  /** Exempts a tensor from tidy scopes. */
  keep(t: Tensor): Tensor {
    t.kept = true;
    for (const s of this.stack) s.delete(t);
    return t;
  }

  /** Runs fn; disposes every tensor it created except those it returns and kept ones. */
  tidy<T extends TensorTree>(fn: () => T): T {
    const scope = new Set<Tensor>();
    this.stack.push(scope);
    let result: T;
    try {
      result = fn();
    } finally {
      this.stack.pop();
    }
    const survivors = new Set<Tensor>();
    collectTensors(result, survivors);
    for (const t of scope) if (!survivors.has(t) && !t.kept) t.dispose();
    const parent = this.stack.at(-1);
    if (parent) for (const t of survivors) if (scope.has(t)) parent.add(t);
    return result;
  }

  noGrad<T>(fn: () => T): T {
    this.noGradDepth++;
    try {
      return fn();
    } finally {
      this.noGradDepth--;
    }
  }

  get gradEnabled(): boolean {
    return this.noGradDepth === 0;
  }
}

function collectTensors(v: TensorTree, out: Set<Tensor>): void {
  if (v instanceof Tensor) out.add(v);
  else if (Array.isArray(v)) for (const x of v) collectTensors(x, out);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) collectTensors(x, out);
}
