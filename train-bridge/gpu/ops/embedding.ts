// embedding(table, ids) = table[ids]: one row of `table [V, D]` per token (a Qwen2 token embedding; also
// the splice of image features into a sequence, as a gather from stacked rows). Id −1 gives a zero row.
// The gradient is a scatter-add done as a gather: the host sorts the token positions by id, and one
// thread per (distinct id, d) sums its tokens' rows in token order — deterministic, no float atomics.
// Tables past one storage binding (151,936 × 896 f32 is 545 MB) are handled in row blocks.
import type { KernelDef } from '../kernel.ts';
import { grid1d } from '../kernels/elementwise.ts';
import { shapeString, type Tensor } from '../tensor.ts';

// ---- kernels
const FORWARD: KernelDef = {
  name: 'embedding',
  uniforms: ['T', 'D', 'v0', 'rows', 'tbase'],
  storage: [
    { name: 'table', access: 'read' },
    { name: 'ids', access: 'read', type: 'i32' },
    { name: 'y', access: 'read_write' },
  ],
  // Every block writes the tokens whose id falls in it; the first block also zeroes the −1 tokens.
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= P.T * P.D) { return; }
  let id = ids[i / P.D];
  if (id < 0) {
    if (P.v0 == 0u) { y[i] = 0.0; }
    return;
  }
  let r = u32(id) - P.v0;
  if (u32(id) < P.v0 || r >= P.rows) { return; }
  y[i] = table[P.tbase + r * P.D + i % P.D];
}`,
};

/** dtable[uniq[u]] = Σ over u's tokens (start[u] ≤ e < start[u+1], in token order) of dy[token[e]]. */
const GRAD: KernelDef = {
  name: 'embedding_grad',
  uniforms: ['U', 'D', 'u0', 'v0', 'tbase'],
  storage: [
    { name: 'dy', access: 'read' },
    { name: 'uniq', access: 'read', type: 'u32' },
    { name: 'start', access: 'read', type: 'u32' },
    { name: 'token', access: 'read', type: 'u32' },
    { name: 'dtable', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= P.U * P.D) { return; }
  let u = P.u0 + i / P.D;
  let d = i % P.D;
  var s = 0.0;
  for (var e = start[u]; e < start[u + 1u]; e++) { s += dy[token[e] * P.D + d]; }
  dtable[P.tbase + (uniq[u] - P.v0) * P.D + d] = s;
}`,
};

/** Row blocks of a [V, D] table that each fit one storage binding. */
function rowBlocks(t: Tensor, V: number, D: number): { v0: number; rows: number }[] {
  const eng = t.engine;
  const per = Math.max(1, Math.floor((eng.maxBindingBytes / 4 - eng.storageAlign / 4) / D));
  const out: { v0: number; rows: number }[] = [];
  for (let v0 = 0; v0 < V; v0 += per) out.push({ v0, rows: Math.min(per, V - v0) });
  return out;
}

// ---- forward
export function embedding(table: Tensor, ids: Int32Array): Tensor {
  if (table.rank !== 2) throw new Error(`embedding: table ${shapeString(table.shape)} is not [V, D]`);
  const [V, D] = table.shape as [number, number];
  for (const [t, id] of ids.entries()) {
    if (!Number.isInteger(id) || id < -1 || id >= V)
      throw new Error(`embedding: id ${id} at token ${t} outside the table of ${V} rows`);
  }
  const eng = table.engine;
  const T = ids.length;
  const y = eng.empty([T, D]);
  if (T === 0) return y;
  const idsT = eng.uploadBits(ids, [T]);
  for (const b of rowBlocks(table, V, D)) {
    const w = table.window(b.v0 * D, b.rows * D);
    eng.dispatch(
      FORWARD,
      [w.range, idsT.range(), y.range()],
      { T, D, v0: b.v0, rows: b.rows, tbase: w.base },
      grid1d(eng, T * D),
    );
  }
  idsT.dispose();
  eng.record('embedding', [table], y, [], (dy) => [embeddingGrad(dy, table, ids)]);
  return y;
}

// ---- gradient
function embeddingGrad(dy: Tensor, table: Tensor, ids: Int32Array): Tensor {
  const eng = dy.engine;
  const [V, D] = table.shape as [number, number];
  // Token positions sorted by id, then by position (each id's tokens summed in token order).
  const order = [...ids.keys()].filter((t) => (ids[t] as number) >= 0);
  order.sort((a, b) => (ids[a] as number) - (ids[b] as number) || a - b);
  const uniq: number[] = [];
  const start: number[] = [];
  for (const [e, t] of order.entries()) {
    const id = ids[t] as number;
    if (uniq.at(-1) !== id) {
      uniq.push(id);
      start.push(e);
    }
  }
  start.push(order.length);
  const dtable = eng.zeros([V, D]);
  if (uniq.length === 0) return dtable;
  const tU = eng.uploadBits(Uint32Array.from(uniq), [uniq.length]);
  const tS = eng.uploadBits(Uint32Array.from(start), [start.length]);
  const tT = eng.uploadBits(Uint32Array.from(order), [order.length]);
  let u0 = 0;
  for (const b of rowBlocks(table, V, D)) {
    let u1 = u0;
    while (u1 < uniq.length && (uniq[u1] as number) < b.v0 + b.rows) u1++;
    if (u1 > u0) {
      const w = dtable.window(b.v0 * D, b.rows * D);
      eng.dispatch(
        GRAD,
        [dy.range(), tU.range(), tS.range(), tT.range(), w.range],
        { U: u1 - u0, D, u0, v0: b.v0, tbase: w.base },
        grid1d(eng, (u1 - u0) * D),
      );
    }
    u0 = u1;
  }
  for (const t of [tU, tS, tT]) t.dispose();
  return dtable;
}
