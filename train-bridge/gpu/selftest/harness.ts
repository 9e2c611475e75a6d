// The selftest's machinery: a case is an op run on the GPU and its TensorFlow.js CPU reference over the same
// seeded inputs; runCase compares the output and every input gradient (through tf.grads).
import type * as TF from '@tensorflow/tfjs';
import type { Engine } from '../engine.ts';
import * as ops from '../ops/index.ts';
import type { Tensor } from '../tensor.ts';

export type Tf = typeof TF;

export interface SelftestResult {
  op: string;
  case: string;
  /** Max abs error of the output and of every gradient; rel = abs / max |reference|. */
  maxAbs: number;
  maxRel: number;
  worst: string;
  pass: boolean;
  error?: string;
}

export interface SelftestReport {
  adapter: string;
  results: SelftestResult[];
  pass: boolean;
  seconds: number;
}

export interface InputSpec {
  shape: number[];
  /** Needs a gradient (uploaded as a parameter). */
  grad?: boolean;
  init?: 'normal' | 'positive' | 'small';
}

export interface Case {
  op: string;
  name: string;
  inputs: InputSpec[];
  gpu: (x: Tensor[]) => Tensor;
  ref: (tf: Tf, x: TF.Tensor[]) => TF.Tensor;
  tol?: number;
  /** Run on the small-binding engine too (inputs sized past 128 KiB there). */
  chunked?: boolean;
  /** An inference op: compare the output only, under noGrad. */
  forwardOnly?: boolean;
}

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomData(r: () => number, n: number, init: InputSpec['init']): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
    out[i] = init === 'positive' ? 0.5 + r() : init === 'small' ? 0.1 * g : g;
  }
  return out;
}

export function compare(
  got: Float32Array,
  want: Float32Array | Int32Array | Uint8Array,
): { abs: number; rel: number } {
  let abs = 0;
  let scale = 0;
  if (got.length !== want.length) return { abs: Infinity, rel: Infinity };
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs((got[i] as number) - (want[i] as number));
    abs = Number.isNaN(d) ? Infinity : Math.max(abs, d);
    scale = Math.max(scale, Math.abs(want[i] as number));
  }
  return { abs, rel: abs / Math.max(scale, 1e-6) };
}

export function randomInputs(r: () => number, c: Case): Float32Array[] {
  return c.inputs.map((s) =>
    randomData(
      r,
      s.shape.reduce((a, b) => a * b, 1),
      s.init,
    ),
  );
}

/** A result from one comparison (those without gradients: the optimiser and forward-only checks). */
export function checked(
  op: string,
  name: string,
  e: { abs: number; rel: number },
  worst: string,
  tol: number,
): SelftestResult {
  return { op, case: name, maxAbs: e.abs, maxRel: e.rel, worst, pass: e.rel <= tol };
}

export async function runCase(eng: Engine, tf: Tf, c: Case, seed: number): Promise<SelftestResult> {
  const r = rng(seed);
  const data = randomInputs(r, c);
  const tol = c.tol ?? 2e-4;
  const made: Tensor[] = [];
  try {
    const xs = c.inputs.map((s, i) => {
      const t = s.grad
        ? eng.parameter(data[i] as Float32Array, s.shape)
        : eng.upload(data[i] as Float32Array, s.shape);
      made.push(t);
      return t;
    });
    const y = eng.tidy(() => c.gpu(xs));
    made.push(y);
    const dyData = randomData(r, y.size, 'normal');
    const dy = eng.upload(dyData, y.shape);
    made.push(dy);
    eng.backward(y, dy);
    const got = [await y.read()];
    for (const x of xs) got.push(x.grad ? await x.grad.read() : new Float32Array(x.size));
    // Reference
    const want = tf.tidy(() => {
      const txs = c.inputs.map((s, i) => tf.tensor(data[i] as Float32Array, s.shape));
      const ty = c.ref(tf, txs);
      const grads = tf.grads((...a: TF.Tensor[]) => c.ref(tf, a))(txs, tf.tensor(dyData, ty.shape));
      return [ty, ...grads].map((t) => t.dataSync() as Float32Array);
    });
    let maxAbs = 0;
    let maxRel = 0;
    let worst = 'output';
    const names = ['output', ...c.inputs.map((_, i) => `grad[${i}]`)];
    got.forEach((g, i) => {
      const e = compare(g, want[i] as Float32Array);
      maxAbs = Math.max(maxAbs, e.abs);
      if (e.rel >= maxRel) {
        maxRel = e.rel;
        worst = names[i] as string;
      }
    });
    return { op: c.op, case: c.name, maxAbs, maxRel, worst, pass: maxRel <= tol };
  } catch (err) {
    eng.clearTape();
    return {
      op: c.op,
      case: c.name,
      maxAbs: Infinity,
      maxRel: Infinity,
      worst: '-',
      pass: false,
      error: (err as Error).message,
    };
  } finally {
    for (const t of made) {
      t.grad?.dispose();
      t.dispose();
    }
  }
}

export async function runForwardOnly(eng: Engine, tf: Tf, c: Case, seed: number): Promise<SelftestResult> {
  const r = rng(seed);
  const data = randomInputs(r, c);
  const xs = c.inputs.map((s, i) => eng.upload(data[i] as Float32Array, s.shape));
  const y = eng.noGrad(() => c.gpu(xs));
  const got = await y.read();
  const want = tf.tidy(
    () =>
      c
        .ref(
          tf,
          c.inputs.map((s, i) => tf.tensor(data[i] as Float32Array, s.shape)),
        )
        .dataSync() as Float32Array,
  );
  for (const t of [...xs, y]) t.dispose();
  return checked(c.op, c.name, compare(got, want), 'output', c.tol ?? 2e-4);
}

/** Ops whose TF.js function has the same name and arguments. */
const SAME_AS_TF = {
  add: ops.add,
  sub: ops.sub,
  mul: ops.mul,
  relu: ops.relu,
  sigmoid: ops.sigmoid,
  softmax: ops.softmax,
};

/** A case for an op that TF.js has under the same name; every input takes a gradient. */
export function likeTf(op: keyof typeof SAME_AS_TF, name: string, ...shapes: number[][]): Case {
  return {
    op,
    name,
    inputs: shapes.map((shape) => ({ shape, grad: true })),
    gpu: (xs) => (SAME_AS_TF[op] as (...a: Tensor[]) => Tensor)(...xs),
    ref: (tf, xs) => (tf[op] as (...a: TF.Tensor[]) => TF.Tensor)(...xs),
  };
}
