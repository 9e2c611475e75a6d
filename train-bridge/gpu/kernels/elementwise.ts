// Shared machinery for elementwise kernels: one thread per element over a 2-D grid of workgroups, and
// chunking over binding-sized pieces so tensors larger than maxStorageBufferBindingSize still work.
import { type KernelDef, LINEAR_INDEX } from '../kernel.ts';
import type { Tensor, TensorEngine } from '../tensor.ts';

export const EW_WG = 256;

/** Workgroup grid covering `n` threads with 1-D workgroups of `wg`, folded into 2-D past 65535. */
export function grid1d(eng: TensorEngine, n: number, wg = EW_WG): [number, number, number] {
  const groups = Math.ceil(n / wg);
  const gx = Math.min(groups, eng.maxWorkgroupsPerDim);
  return [gx, Math.ceil(groups / gx), 1];
}

const cache = new Map<string, KernelDef>();

/** y = f(x) with `expr` in terms of `v` (the input value). Extra f32 uniforms are `P.a`, `P.b`. */
export function unaryKernel(name: string, expr: string, helpers = ''): KernelDef {
  const key = `u:${name}:${expr}`;
  let k = cache.get(key);
  if (!k) {
    k = {
      name,
      uniforms: ['n', 'a:f32', 'b:f32'],
      storage: [
        { name: 'x', access: 'read' },
        { name: 'y', access: 'read_write' },
      ],
      body: `${LINEAR_INDEX}
${helpers}
@compute @workgroup_size(${EW_WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = linear_index(wid, nwg, li, ${EW_WG}u);
  if (i >= P.n) { return; }
  let v = x[i];
  y[i] = ${expr};
}`,
    };
    cache.set(key, k);
  }
  return k;
}

/**
 * out = f(a, b) where b broadcasts over a's leading dims: b index = i mod nb (nb = b's size, a suffix of
 * a's shape). `expr` uses `va` and `vb`.
 */
export function binaryKernel(name: string, expr: string, helpers = ''): KernelDef {
  const key = `b:${name}:${expr}`;
  let k = cache.get(key);
  if (!k) {
    k = {
      name,
      uniforms: ['n', 'nb', 'a:f32', 'b:f32'],
      storage: [
        { name: 'xa', access: 'read' },
        { name: 'xb', access: 'read' },
        { name: 'y', access: 'read_write' },
      ],
      body: `${LINEAR_INDEX}
${helpers}
@compute @workgroup_size(${EW_WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = linear_index(wid, nwg, li, ${EW_WG}u);
  if (i >= P.n) { return; }
  let va = xa[i];
  let vb = xb[i % P.nb];
  y[i] = ${expr};
}`,
    };
    cache.set(key, k);
  }
  return k;
}

/** Runs a unary kernel over x into a new tensor of the same shape (chunked when large). */
export function runUnary(def: KernelDef, x: Tensor, consts: { a?: number; b?: number } = {}): Tensor {
  const eng = x.engine;
  const y = eng.empty(x.shape);
  for (const c of eng.chunks(x.size, 1)) {
    eng.dispatch(
      def,
      [x.slice(c.start, c.count), y.slice(c.start, c.count)],
      { n: c.count, a: consts.a ?? 0, b: consts.b ?? 0 },
      grid1d(eng, c.count),
    );
  }
  return y;
}

/** Runs a binary kernel; `b` is a's shape or a suffix of it. Chunks start at multiples of b's size. */
export function runBinary(
  def: KernelDef,
  a: Tensor,
  b: Tensor,
  consts: { a?: number; b?: number } = {},
): Tensor {
  const eng = a.engine;
  const y = eng.empty(a.shape);
  const nb = b.size;
  if (nb === a.size) {
    for (const c of eng.chunks(a.size, 1)) {
      const r = [a.slice(c.start, c.count), b.slice(c.start, c.count), y.slice(c.start, c.count)];
      eng.dispatch(
        def,
        r,
        { n: c.count, nb: c.count, a: consts.a ?? 0, b: consts.b ?? 0 },
        grid1d(eng, c.count),
      );
    }
    return y;
  }
  // Chunk in whole units of b so that (i mod nb) stays correct inside every chunk.
  for (const c of eng.chunks(a.size / nb, nb)) {
    const start = c.start * nb;
    const count = c.count * nb;
    eng.dispatch(
      def,
      [a.slice(start, count), b.range(), y.slice(start, count)],
      { n: count, nb, a: consts.a ?? 0, b: consts.b ?? 0 },
      grid1d(eng, count),
    );
  }
  return y;
}

/** True when `suffix` equals the trailing dims of `shape` (so it broadcasts by index modulo). */
export function isSuffixShape(shape: readonly number[], suffix: readonly number[]): boolean {
  if (suffix.length > shape.length) return false;
  const off = shape.length - suffix.length;
  return suffix.every((d, i) => d === shape[off + i]) || (suffix.length === 1 && suffix[0] === 1);
}
