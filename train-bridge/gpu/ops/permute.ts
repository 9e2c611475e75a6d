// permute(x, perm): y[i_perm[0], …] = x[i_0, …], up to rank 6 (head splits, NCHW⇄NHWC at the edges).

import type { KernelDef } from '../kernel.ts';
import { grid1d } from '../kernels/elementwise.ts';
import { shapeString, type Tensor } from '../tensor.ts';

const MAX_RANK = 6;

// ---- kernel: one thread per output element; decompose its index by the output shape, gather.
const PERMUTE: KernelDef = {
  name: 'permute',
  uniforms: [
    'n',
    ...Array.from({ length: MAX_RANK }, (_, i) => `d${i}`),
    ...Array.from({ length: MAX_RANK }, (_, i) => `s${i}`),
  ],
  storage: [
    { name: 'x', access: 'read' },
    { name: 'y', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= P.n) { return; }
  // d = output dims (padded with 1 at the front), s = input stride of each output dim.
  var r = i;
  var src = 0u;
  let c5 = r % P.d5; r = r / P.d5; src += c5 * P.s5;
  let c4 = r % P.d4; r = r / P.d4; src += c4 * P.s4;
  let c3 = r % P.d3; r = r / P.d3; src += c3 * P.s3;
  let c2 = r % P.d2; r = r / P.d2; src += c2 * P.s2;
  let c1 = r % P.d1; r = r / P.d1; src += c1 * P.s1;
  src += r * P.s0;
  y[i] = x[src];
}`,
};

function permuteRaw(x: Tensor, perm: readonly number[]): Tensor {
  const rank = x.rank;
  if (rank > MAX_RANK || perm.length !== rank || [...perm].sort().some((p, i) => p !== i)) {
    throw new Error(`permute: ${JSON.stringify(perm)} is not a permutation of ${shapeString(x.shape)}`);
  }
  const inStrides: number[] = new Array(rank);
  let acc = 1;
  for (let i = rank - 1; i >= 0; i--) {
    inStrides[i] = acc;
    acc *= x.shape[i] as number;
  }
  const outShape = perm.map((p) => x.shape[p] as number);
  const eng = x.engine;
  const y = eng.empty(outShape);
  const u: Record<string, number> = { n: y.size };
  const pad = MAX_RANK - rank;
  for (let i = 0; i < MAX_RANK; i++) {
    u[`d${i}`] = i < pad ? 1 : (outShape[i - pad] as number);
    u[`s${i}`] = i < pad ? 0 : (inStrides[perm[i - pad] as number] as number);
  }
  eng.dispatch(PERMUTE, [x.range(), y.range()], u, grid1d(eng, y.size));
  return y;
}

// ---- forward
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const y = permuteRaw(x, perm);
  const inverse = perm.map((_, i) => perm.indexOf(i));
  // ---- gradient: the inverse permutation
  x.engine.record('permute', [x], y, [], (dy) => [permuteRaw(dy, inverse)]);
  return y;
}
