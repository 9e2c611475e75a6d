// Kernels that give each row of a [rows, C] view (C = the last dim) its own workgroup: the threads stride
// over the row's C values and combine their partials with a workgroup reduction. Softmax and
// LayerNormChannel have this shape; the row indexing and the grid live here so they cannot drift apart.
import type { Engine } from '../engine.ts';
import type { KernelDef, StorageBinding } from '../kernel.ts';

/** Threads per row; the body's loops stride by it (`c += ${ROW_WG}u`). */
export const ROW_WG = 64;

export interface RowKernelSpec {
  name: string;
  /** Uniforms after the `rows` and `C` every row kernel has. */
  uniforms?: string[];
  storage: StorageBinding[];
  /** Module-scope WGSL before `main` (e.g. the workgroup reduction). */
  helpers: string;
  /** The body of `main`, with `row`, `base` (the row's first element) and `li` (the thread) bound. */
  body: string;
}

export function rowKernel(s: RowKernelSpec): KernelDef {
  return {
    name: s.name,
    uniforms: ['rows', 'C', ...(s.uniforms ?? [])],
    storage: s.storage,
    // The grid is folded into 2-D past the per-dimension limit, so trailing workgroups have no row.
    body: /* wgsl */ `${s.helpers}
@compute @workgroup_size(${ROW_WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= P.rows) { return; }
  let base = row * P.C;
${s.body}
}`,
  };
}

/**
 * WGSL `fn <name>(v: f32, li: u32<params>) -> f32`: every thread passes its partial and gets the row's
 * result (a tree over the workgroup). `combine` folds `red[li + s]` into `red[li]`.
 */
export function rowReduction(name: string, params: string, combine: string): string {
  return /* wgsl */ `
var<workgroup> red: array<f32, ${ROW_WG}>;
fn ${name}(v: f32, li: u32${params}) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s >>= 1u) {
    if (li < s) { ${combine} }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;
}

/** One workgroup per row, folded into 2-D where rows exceed the per-dimension workgroup limit. */
export function rowGrid(eng: Engine, rows: number): [number, number] {
  const gx = Math.min(rows, eng.maxWorkgroupsPerDim);
  return [gx, Math.ceil(rows / gx)];
}

/** WGSL `row_sum(v, li)`: the row's sum (LayerNormChannel, RMSNorm). */
export const ROW_SUM = rowReduction('row_sum', '', 'red[li] += red[li + s];');

/** WGSL `row_reduce(v, li, is_max)`: the row's max or sum (softmax, cross-entropy). */
export const ROW_MAX_OR_SUM = rowReduction(
  'row_reduce',
  ', is_max: bool',
  'red[li] = select(red[li] + red[li + s], max(red[li], red[li + s]), is_max);',
);
