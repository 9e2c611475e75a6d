// Column reductions of a [B, R, C] tensor over R: out[b, c] = scale · Σ_r f(x, z, p1[c], p2[c]).
// Tiled partial sums (a workgroup per 64 channels × a block of rows) then a reduction of the partials:
// the shape of every per-channel gradient (bias, BatchNorm, LayerNorm weight, layer scale, global mean).
// When one block of rows is enough (small tensors, where the second dispatch would cost more than the
// parallelism buys) the partial kernel writes the scaled result itself: one dispatch.
import type { KernelDef } from '../kernel.ts';
import type { Tensor } from '../tensor.ts';

const WG = 64;
const cache = new Map<string, KernelDef>();

/** `expr` is WGSL over `xv` (x value), `zv` (z value), `p1v`, `p2v` (per-channel values). */
function partialKernel(expr: string): KernelDef {
  let k = cache.get(expr);
  if (!k) {
    k = {
      name: `reduce_rows_partial(${expr})`,
      uniforms: ['C', 'rows', 'rowsPer', 'bstride', 'xbase', 'zbase', 'b0', 'nch', 'cbase', 'scale:f32'],
      storage: [
        { name: 'x', access: 'read' },
        { name: 'z', access: 'read' },
        { name: 'p1', access: 'read' },
        { name: 'p2', access: 'read' },
        { name: 'partial', access: 'read_write' },
      ],
      body: /* wgsl */ `
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let c = wid.x * ${WG}u + li;
  if (c >= P.C) { return; }
  let r0 = wid.y * P.rowsPer;
  let r1 = min(r0 + P.rowsPer, P.rows);
  let p1v = p1[c];
  let p2v = p2[c];
  var acc = 0.0;
  for (var r = r0; r < r1; r++) {
    let off = wid.z * P.bstride + r * P.C + c;
    let xv = x[P.xbase + off];
    let zv = z[P.zbase + off];
    acc += ${expr};
  }
  partial[((P.b0 + wid.z) * P.nch + P.cbase + wid.y) * P.C + c] = acc * P.scale;
}`,
    };
    cache.set(expr, k);
  }
  return k;
}

const FINISH: KernelDef = {
  name: 'reduce_rows_finish',
  uniforms: ['C', 'n', 'nch', 'scale:f32'],
  storage: [
    { name: 'partial', access: 'read' },
    { name: 'out', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= P.n) { return; }
  let b = i / P.C;
  let c = i % P.C;
  var acc = 0.0;
  for (var k = 0u; k < P.nch; k++) { acc += partial[(b * P.nch + k) * P.C + c]; }
  out[i] = acc * P.scale;
}`,
};

export interface ReduceRowsArgs {
  B: number;
  R: number;
  C: number;
  /** Default 'xv' (a plain column sum). */
  expr?: string;
  z?: Tensor;
  p1?: Tensor;
  p2?: Tensor;
  scale?: number;
  /** Output shape (default [B, C]). */
  shape?: readonly number[];
}

/**
 * Rows per block of the tiled reduction's partial sums: at least 32 (GPUs), at least 8192 on CPU adapters,
 * where a dispatch costs ~100 µs of driver time, about what one lane group spends summing 8192 rows, so
 * smaller blocks are not worth a second dispatch. A block must also fit one binding when the tensor is
 * chunked. Ops with a fused single-workgroup path (BatchNorm) take it when R ≤ this.
 */
export function minRowsPerBlock(eng: Tensor['engine'], C: number): number {
  const maxElems = Math.floor(eng.maxBindingBytes / 4) - eng.storageAlign / 4;
  return Math.max(1, Math.min(eng.ctx.adapter.isCpu ? 8192 : 32, Math.floor(maxElems / C)));
}

export function reduceRows(x: Tensor, a: ReduceRowsArgs): Tensor {
  const eng = x.engine;
  const { B, R, C } = a;
  if (B * R * C !== x.size) throw new Error(`reduceRows: [${B},${R},${C}] does not cover ${x.size} elements`);
  const out = eng.empty(a.shape ?? [B, C]);
  if (B * C === 0) return out;
  const cgroups = Math.ceil(C / WG);
  const slack = eng.storageAlign / 4;
  const maxElems = Math.floor(eng.maxBindingBytes / 4) - slack;
  // Enough row blocks to fill the device, but not below minRowsPerBlock rows each.
  const minRows = minRowsPerBlock(eng, C);
  const nch = Math.max(
    1,
    Math.min(Math.ceil(R / minRows), Math.ceil((eng.targetWorkgroups * 4) / (B * cgroups))),
  );
  const rowsPer = Math.ceil(R / Math.max(1, nch));
  const nchunks = Math.max(1, Math.ceil(R / rowsPer));
  const single = nchunks === 1;
  const partial = single ? out : eng.empty([B * nchunks * C]);
  const z = a.z ?? x;
  const p1 = a.p1 ?? x;
  const p2 = a.p2 ?? x;
  const def = partialKernel(a.expr ?? 'xv');
  const run = (b0: number, nb: number, r0: number, rows: number) => {
    const start = (b0 * R + r0) * C;
    const count = nb === 1 ? rows * C : nb * R * C;
    const xw = x.window(start, count);
    const zw = z.window(start, count);
    eng.dispatch(
      def,
      [
        xw.range,
        zw.range,
        p1.slice(0, Math.min(p1.size, C)),
        p2.slice(0, Math.min(p2.size, C)),
        partial.range(),
      ],
      {
        C,
        rows,
        rowsPer,
        bstride: R * C,
        xbase: xw.base,
        zbase: zw.base,
        b0,
        nch: nchunks,
        cbase: r0 / rowsPer,
        scale: single ? (a.scale ?? 1) : 1,
      },
      [cgroups, Math.ceil(rows / rowsPer), nb],
    );
  };
  if (B * R * C <= maxElems) run(0, B, 0, R);
  else if (R * C <= maxElems) {
    const per = Math.floor(maxElems / (R * C));
    for (let b = 0; b < B; b += per) run(b, Math.min(per, B - b), 0, R);
  } else {
    const rowsPerDispatch = Math.max(1, Math.floor(maxElems / C / rowsPer)) * rowsPer;
    if (rowsPerDispatch * C > maxElems)
      throw new Error(`reduceRows: a block of ${rowsPer} rows × ${C} does not fit a binding`);
    for (let b = 0; b < B; b++)
      for (let r = 0; r < R; r += rowsPerDispatch) run(b, 1, r, Math.min(rowsPerDispatch, R - r));
  }
  if (single) return out;
  eng.dispatch(FINISH, [partial.range(), out.range()], { C, n: B * C, nch: nchunks, scale: a.scale ?? 1 }, [
    Math.ceil((B * C) / 64),
  ]);
  partial.dispose();
  return out;
}
