// embeddingBag(table, ids, bagSize): the mean of each bag's embedding rows (a text tower's bag-of-tokens
// input); id −1 is padding. The gradient is a gather per distinct id, built from an occurrence list the
// host already knows (the ids came from it), so no float atomics are needed.

import type { KernelDef } from '../kernel.ts';
import { grid1d } from '../kernels/elementwise.ts';
import { shapeString, type Tensor } from '../tensor.ts';

// ---- kernels
const FORWARD: KernelDef = {
  name: 'embedding_bag',
  uniforms: ['B', 'L', 'D', 'V'],
  storage: [
    { name: 'table', access: 'read' },
    { name: 'ids', access: 'read', type: 'i32' },
    { name: 'y', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (wid.y * nwg.x + wid.x) * 256u + li;
  if (t >= P.B * P.D) { return; }
  let d = t % P.D;
  let b = t / P.D;
  var s = 0.0;
  var n = 0u;
  for (var l = 0u; l < P.L; l++) {
    let id = ids[b * P.L + l];
    if (id < 0 || u32(id) >= P.V) { continue; }
    s += table[u32(id) * P.D + d];
    n++;
  }
  y[t] = select(0.0, s / f32(n), n > 0u);
}`,
};

/** dtable[ids[u], d] = Σ over u's occurrences e of dy[bag_e, d] · w_e; rows not listed are zero. */
const GRAD: KernelDef = {
  name: 'embedding_bag_grad',
  uniforms: ['U', 'D'],
  storage: [
    { name: 'dy', access: 'read' },
    { name: 'uniq', access: 'read', type: 'u32' },
    { name: 'start', access: 'read', type: 'u32' },
    { name: 'bag', access: 'read', type: 'u32' },
    { name: 'weight', access: 'read' },
    { name: 'dtable', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (wid.y * nwg.x + wid.x) * 256u + li;
  if (t >= P.U * P.D) { return; }
  let d = t % P.D;
  let u = t / P.D;
  var s = 0.0;
  for (var e = start[u]; e < start[u + 1u]; e++) { s += dy[bag[e] * P.D + d] * weight[e]; }
  dtable[uniq[u] * P.D + d] = s;
}`,
};

// ---- forward
export function embeddingBag(table: Tensor, ids: Int32Array, bagSize: number): Tensor {
  if (table.rank !== 2 || bagSize < 1 || ids.length % bagSize !== 0) {
    throw new Error(
      `embeddingBag: table ${shapeString(table.shape)}, ${ids.length} ids, bag size ${bagSize}`,
    );
  }
  const [V, D] = table.shape as [number, number];
  const B = ids.length / bagSize;
  const eng = table.engine;
  for (const id of ids) {
    if (id >= V || id < -1) throw new Error(`embeddingBag: id ${id} outside the table of ${V} rows`);
  }
  const idsT = eng.uploadBits(ids, [ids.length]);
  const y = eng.empty([B, D]);
  eng.dispatch(
    FORWARD,
    [table.range(), idsT.range(), y.range()],
    { B, L: bagSize, D, V },
    grid1d(eng, B * D),
  );
  idsT.dispose();
  eng.record('embeddingBag', [table], y, [], (dy) => [embeddingBagGrad(dy, ids, bagSize, V, D)]);
  return y;
}

// ---- gradient
function embeddingBagGrad(dy: Tensor, ids: Int32Array, L: number, V: number, D: number): Tensor {
  const eng = dy.engine;
  const byId = new Map<number, { bag: number; w: number }[]>();
  for (let b = 0; b < ids.length / L; b++) {
    let n = 0;
    for (let l = 0; l < L; l++) if ((ids[b * L + l] as number) >= 0) n++;
    for (let l = 0; l < L; l++) {
      const id = ids[b * L + l] as number;
      if (id < 0) continue;
      const list = byId.get(id) ?? [];
      if (list.length === 0) byId.set(id, list);
      list.push({ bag: b, w: 1 / n });
    }
  }
  const uniq = [...byId.keys()].sort((a, b) => a - b);
  const start = new Uint32Array(uniq.length + 1);
  const bags: number[] = [];
  const weights: number[] = [];
  uniq.forEach((id, u) => {
    for (const e of byId.get(id)!) {
      bags.push(e.bag);
      weights.push(e.w);
    }
    start[u + 1] = bags.length;
  });
  const dtable = eng.zeros([V, D]);
  if (uniq.length === 0) return dtable;
  const tU = eng.uploadBits(Uint32Array.from(uniq), [uniq.length]);
  const tS = eng.uploadBits(start, [start.length]);
  const tB = eng.uploadBits(Uint32Array.from(bags), [bags.length]);
  const tW = eng.upload(Float32Array.from(weights), [weights.length]);
  eng.dispatch(
    GRAD,
    [dy.range(), tU.range(), tS.range(), tB.range(), tW.range(), dtable.range()],
    { U: uniq.length, D },
    grid1d(eng, uniq.length * D),
  );
  for (const t of [tU, tS, tB, tW]) t.dispose();
  return dtable;
}
