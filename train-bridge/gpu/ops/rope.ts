// rope(x, table): rotary position embedding as Qwen2 applies it to q and k (the rotate_half convention:
// the first and second halves of each head are the two coordinates of each rotated pair). Positions are
// given per token, so padded and packed sequences each count from their own start. The angles are made
// once per batch on the host (ropeTable) exactly as the reference computes them in f32 — the GPU's
// sin/cos are not accurate for large arguments — and every layer's q and k reuse them.
import type { Engine } from '../engine.ts';
import type { KernelDef } from '../kernel.ts';
import { grid1d } from '../kernels/elementwise.ts';
import { shapeString, type Tensor } from '../tensor.ts';

/** cos and sin of position·inv_freq, each [T, headDim/2]; not differentiable. */
export interface RopeTable {
  cos: Tensor;
  sin: Tensor;
  headDim: number;
}

/** The angles for tokens at `positions`: inv_freq_i = 1 / θ^(2i/headDim), all in f32 like Qwen2. */
export function ropeTable(eng: Engine, positions: Int32Array, headDim: number, theta: number): RopeTable {
  if (headDim % 2 !== 0) throw new Error(`ropeTable: head dim ${headDim} is odd`);
  const half = headDim / 2;
  const f = Math.fround;
  const invFreq = Float32Array.from({ length: half }, (_, i) => f(1 / f(theta ** f(f(2 * i) / headDim))));
  const cos = new Float32Array(positions.length * half);
  const sin = new Float32Array(positions.length * half);
  for (const [t, p] of positions.entries()) {
    for (let i = 0; i < half; i++) {
      const a = f(p * (invFreq[i] as number));
      cos[t * half + i] = Math.cos(a);
      sin[t * half + i] = Math.sin(a);
    }
  }
  return {
    cos: eng.upload(cos, [positions.length, half]),
    sin: eng.upload(sin, [positions.length, half]),
    headDim,
  };
}

// ---- kernel: y = x·cos + rotate_half(x)·sin (sign = 1); the gradient rotates back (sign = −1).
const ROTATE: KernelDef = {
  name: 'rope',
  uniforms: ['T', 'H', 'half', 'sign:f32'],
  storage: [
    { name: 'x', access: 'read' },
    { name: 'cosv', access: 'read' },
    { name: 'sinv', access: 'read' },
    { name: 'y', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= P.T * P.H * P.half) { return; }
  let j = i % P.half;
  let th = i / P.half;
  let t = th / P.H;
  let a = th * 2u * P.half + j;
  let b = a + P.half;
  let c = cosv[t * P.half + j];
  let s = sinv[t * P.half + j] * P.sign;
  let xa = x[a];
  let xb = x[b];
  y[a] = xa * c - xb * s;
  y[b] = xb * c + xa * s;
}`,
};

function rotate(x: Tensor, table: RopeTable, sign: number): Tensor {
  const eng = x.engine;
  const [T, H] = x.shape as [number, number, number];
  const half = table.headDim / 2;
  const y = eng.empty(x.shape);
  eng.dispatch(
    ROTATE,
    [x.range(), table.cos.range(), table.sin.range(), y.range()],
    { T, H, half, sign },
    grid1d(eng, T * H * half),
  );
  return y;
}

// ---- forward
export function rope(x: Tensor, table: RopeTable): Tensor {
  const T = table.cos.shape[0];
  if (x.rank !== 3 || x.shape[0] !== T || x.shape[2] !== table.headDim) {
    throw new Error(
      `rope: x ${shapeString(x.shape)} is not [T, heads, ${table.headDim}] for a table of ${T} tokens`,
    );
  }
  const y = rotate(x, table, 1);
  // ---- gradient: the transpose of a rotation is the rotation by −angle
  x.engine.record('rope', [x], y, [table.cos, table.sin], (dy) => [rotate(dy, table, -1)]);
  return y;
}
