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

/**
 * An elementwise kernel in two widths: `scalar` (one f32 per thread) and `vec4` (four per thread, for sizes
 * that are multiples of 4). The expression and helpers are written once in terms of `T` (an alias of f32 or
 * vec4<f32>): write literals that must match the width as `T(0.0)`. On lavapipe each invocation has a fixed
 * cost of several ns that dwarfs an add, so four elements a thread runs ~3× faster; each lane does the same
 * arithmetic either way, so the results are identical.
 */
export interface ElementwiseKernel {
  scalar: KernelDef;
  vec4: KernelDef;
}

/** Threads per workgroup of the vec4 form (64 measured a little faster than 256 on lavapipe). */
const V4_WG = 64;
const cache = new Map<string, ElementwiseKernel>();

function elementwise(
  key: string,
  make: (type: string, wg: number, name: string) => KernelDef,
  name: string,
): ElementwiseKernel {
  let k = cache.get(key);
  if (!k) {
    k = { scalar: make('f32', EW_WG, name), vec4: make('vec4<f32>', V4_WG, `${name}_v4`) };
    cache.set(key, k);
  }
  return k;
}

/** y = f(x) with `expr` in terms of `v` (the input value). Extra f32 uniforms are `P.a`, `P.b`. */
export function unaryKernel(name: string, expr: string, helpers = ''): ElementwiseKernel {
  return elementwise(
    `u:${name}:${expr}`,
    (type, wg, kname) => ({
      name: kname,
      uniforms: ['n', 'a:f32', 'b:f32'],
      storage: [
        { name: 'x', access: 'read', type },
        { name: 'y', access: 'read_write', type },
      ],
      body: `alias T = ${type};
${LINEAR_INDEX}
${helpers}
@compute @workgroup_size(${wg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = linear_index(wid, nwg, li, ${wg}u);
  if (i >= P.n) { return; }
  let v = x[i];
  y[i] = ${expr};
}`,
    }),
    name,
  );
}

/**
 * out = f(a, b) where b broadcasts over a's leading dims: b index = i mod nb (nb = b's size, a suffix of
 * a's shape). `expr` uses `va` and `vb`.
 */
export function binaryKernel(name: string, expr: string, helpers = ''): ElementwiseKernel {
  return broadcastKernel(`b:${name}:${expr}`, name, expr, helpers, ['a', 'b']);
}

/**
 * out = f(a, b, c): a and b of one shape, c broadcasting over their leading dims like binaryKernel's b.
 * `expr` uses `va`, `vb` and `vc`. Fuses two elementwise ops into one dispatch (a residual with layer scale).
 */
export function ternaryKernel(name: string, expr: string, helpers = ''): ElementwiseKernel {
  return broadcastKernel(`t:${name}:${expr}`, name, expr, helpers, ['a', 'b', 'c']);
}

/** out = f(a, b, c, d): a and b of one shape, c and d (one size) broadcasting like ternaryKernel's c. */
export function quaternaryKernel(name: string, expr: string): ElementwiseKernel {
  return broadcastKernel(`q:${name}:${expr}`, name, expr, '', ['a', 'b', 'c', 'd'], 2);
}

/** The kernel of `operands` (`va`, `vb`, …): all full size but the last `nBroadcast`, read at i mod nb. */
function broadcastKernel(
  key: string,
  name: string,
  expr: string,
  helpers: string,
  operands: string[],
  nBroadcast = 1,
): ElementwiseKernel {
  const firstBroadcast = operands.length - nBroadcast;
  const loads = operands
    .map((o, j) => `  let v${o} = x${o}[${j >= firstBroadcast ? 'i % P.nb' : 'i'}];`)
    .join('\n');
  return elementwise(
    key,
    (type, wg, kname) => ({
      name: kname,
      uniforms: ['n', 'nb', 'a:f32', 'b:f32'],
      storage: [
        ...operands.map((o) => ({ name: `x${o}`, access: 'read' as const, type })),
        { name: 'y', access: 'read_write', type },
      ],
      body: `alias T = ${type};
${LINEAR_INDEX}
${helpers}
@compute @workgroup_size(${wg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = linear_index(wid, nwg, li, ${wg}u);
  if (i >= P.n) { return; }
${loads}
  y[i] = ${expr};
}`,
    }),
    name,
  );
}

/** The form for `n` elements (and a broadcast operand of `nb`): vec4 when both divide by 4. */
function pick(k: ElementwiseKernel, n: number, nb = n): { def: KernelDef; per: number; wg: number } {
  return n % 4 === 0 && nb % 4 === 0
    ? { def: k.vec4, per: 4, wg: V4_WG }
    : { def: k.scalar, per: 1, wg: EW_WG };
}

/** Runs a unary kernel over x into a new tensor of the same shape (chunked when large). */
export function runUnary(k: ElementwiseKernel, x: Tensor, consts: { a?: number; b?: number } = {}): Tensor {
  const eng = x.engine;
  const y = eng.empty(x.shape);
  const { def, per, wg } = pick(k, x.size);
  for (const c of eng.chunks(x.size, 1)) {
    eng.dispatch(
      def,
      [x.slice(c.start, c.count), y.slice(c.start, c.count)],
      { n: c.count / per, a: consts.a ?? 0, b: consts.b ?? 0 },
      grid1d(eng, c.count / per, wg),
    );
  }
  return y;
}

/** Runs a binary kernel; `b` is a's shape or a suffix of it. Chunks start at multiples of b's size. */
export function runBinary(
  k: ElementwiseKernel,
  a: Tensor,
  b: Tensor,
  consts: { a?: number; b?: number } = {},
): Tensor {
  return runBroadcast(k, [a], b, consts);
}

/**
 * Runs a kernel of binaryKernel's, ternaryKernel's or quaternaryKernel's form: `full` tensors of one shape,
 * then `b` (and further broadcast operands of b's size, `more`).
 */
export function runBroadcast(
  k: ElementwiseKernel,
  full: Tensor[],
  b: Tensor,
  consts: { a?: number; b?: number } = {},
  more: Tensor[] = [],
): Tensor {
  const a = full[0] as Tensor;
  const eng = a.engine;
  const y = eng.empty(a.shape);
  const nb = b.size;
  const { def, per, wg } = pick(k, a.size, nb);
  const u = (n: number, nbPer: number) => ({ n, nb: nbPer, a: consts.a ?? 0, b: consts.b ?? 0 });
  if (nb === a.size) {
    for (const c of eng.chunks(a.size, 1)) {
      const r = [...full, b, ...more, y].map((t) => t.slice(c.start, c.count));
      const n = c.count / per;
      eng.dispatch(def, r, u(n, n), grid1d(eng, n, wg));
    }
    return y;
  }
  // Chunk in whole units of b so that (i mod nb) stays correct inside every chunk.
  for (const c of eng.chunks(a.size / nb, nb)) {
    const start = c.start * nb;
    const n = (c.count * nb) / per;
    const r = [
      ...full.map((t) => t.slice(start, c.count * nb)),
      ...[b, ...more].map((t) => t.range()),
      y.slice(start, c.count * nb),
    ];
    eng.dispatch(def, r, u(n, nb / per), grid1d(eng, n, wg));
  }
  return y;
}

/** True when `suffix` equals the trailing dims of `shape` (so it broadcasts by index modulo). */
export function isSuffixShape(shape: readonly number[], suffix: readonly number[]): boolean {
  if (suffix.length > shape.length) return false;
  const off = shape.length - suffix.length;
  return suffix.every((d, i) => d === shape[off + i]) || (suffix.length === 1 && suffix[0] === 1);
}
