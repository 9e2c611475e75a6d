// Global gradient-norm clipping on the GPU: ‖g‖ over all parameters, then every gradient scaled in place
// by min(1, maxNorm/(‖g‖ + 1e-6)) — no read-back, so the step stays one submission.
import type { Engine } from '../engine.ts';
import type { KernelDef } from '../kernel.ts';
import { grid1d } from '../kernels/elementwise.ts';
import { reduceRows } from '../kernels/reduce-rows.ts';
import type { Tensor } from '../tensor.ts';

// ---- kernels
const FINISH: KernelDef = {
  name: 'clip_grad_norm_factor',
  uniforms: ['maxNorm:f32'],
  storage: [
    { name: 'sumsq', access: 'read' },
    { name: 'out', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(1) fn main() {
  let norm = sqrt(sumsq[0]);
  out[0] = norm;
  out[1] = min(1.0, P.maxNorm / (norm + 1e-6));
}`,
};

const SCALE_IN_PLACE: KernelDef = {
  name: 'clip_grad_norm_scale',
  uniforms: ['n'],
  storage: [
    { name: 'g', access: 'read_write' },
    { name: 'factor', access: 'read' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= P.n) { return; }
  g[i] = g[i] * factor[1];
}`,
};

/** Scales the parameters' gradients so their global L2 norm is at most maxNorm; returns the norm before. */
export function clipGradNorm(params: Tensor[], maxNorm: number): Tensor {
  const withGrad = params.filter((p) => p.grad);
  if (withGrad.length === 0) throw new Error('clipGradNorm: no parameter has a gradient');
  const eng: Engine = (withGrad[0] as Tensor).engine;
  const squares = eng.empty([withGrad.length]);
  withGrad.forEach((p, i) => {
    const s = reduceRows(p.grad as Tensor, { B: 1, R: p.size, C: 1, expr: 'xv * xv', shape: [1] });
    eng.copy(s.range(), { buf: squares.storage, offset: i * 4, size: 4 });
    s.dispose();
  });
  const total = reduceRows(squares, { B: 1, R: withGrad.length, C: 1, shape: [1] });
  squares.dispose();
  const normAndFactor = eng.empty([2]);
  eng.dispatch(FINISH, [total.range(), normAndFactor.range()], { maxNorm }, [1]);
  total.dispose();
  for (const p of withGrad) {
    const g = p.grad as Tensor;
    for (const c of eng.chunks(g.size, 1)) {
      eng.dispatch(
        SCALE_IN_PLACE,
        [g.slice(c.start, c.count), normAndFactor.range()],
        { n: c.count },
        grid1d(eng, c.count),
      );
    }
  }
  const norm = eng.empty([1]);
  eng.copy({ buf: normAndFactor.storage, offset: 0, size: 4 }, { buf: norm.storage, offset: 0, size: 4 });
  normAndFactor.dispose();
  return norm;
}
