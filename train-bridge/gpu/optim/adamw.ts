// AdamW with decoupled weight decay (Loshchilov & Hutter; PyTorch's torch.optim.AdamW): per parameter
// p ← p·(1 − lr·wd) − lr·m̂/(√v̂ + ε), one fused kernel for a group of parameters, moments kept on the GPU.
import type { Engine } from '../engine.ts';
import type { KernelDef } from '../kernel.ts';
import { grid1d } from '../kernels/elementwise.ts';
import type { BufferRange } from '../pipeline-cache.ts';
import type { Tensor } from '../tensor.ts';

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/** Optimiser state: scalars and the moments as host f32 copies, in parameter order (1 GB for full FastViTHD). */
export interface AdamWState {
  version: 1;
  step: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  m: Float32Array[];
  v: Float32Array[];
}

// ---- kernel
/**
 * One dispatch updates `count` parameters (or binding-sized pieces of them), each with its own p, g, m, v
 * bindings: the thread for element i of the concatenation finds its piece by the running ends `e0, e1, …`.
 * FastViTHD-tiny has 154 parameter tensors, most of a few hundred floats, and a dispatch costs more than the
 * update on a CPU adapter, so grouping them cuts a step's AdamW dispatches 4× (16 storage bindings, Dawn's
 * limit on lavapipe). Every element gets the same arithmetic as one dispatch per parameter would give it.
 */
const MAX_PIECES = 8;
const stepKernels = new Map<string, KernelDef>();
/**
 * `vec4`: four elements a thread, for groups whose pieces all divide by 4 (lavapipe's per-invocation cost
 * dominates this update; the per-element arithmetic is unchanged, so are the results).
 */
function stepKernel(count: number, vec4: boolean): KernelDef {
  const key = `${count}${vec4 ? 'v4' : ''}`;
  let k = stepKernels.get(key);
  if (k) return k;
  const pieces = Array.from({ length: count }, (_, j) => j);
  const type = vec4 ? 'vec4<f32>' : 'f32';
  const wg = vec4 ? 64 : 256;
  k = {
    name: `adamw_step_x${count}${vec4 ? '_v4' : ''}`,
    uniforms: [
      ...pieces.map((j) => `e${j}`),
      'lr:f32',
      'beta1:f32',
      'beta2:f32',
      'eps:f32',
      'decay:f32',
      'bc1:f32',
      'bc2:f32',
    ],
    storage: pieces.flatMap((j) => [
      { name: `p${j}`, access: 'read_write' as const, type },
      { name: `g${j}`, access: 'read' as const, type },
      { name: `m${j}`, access: 'read_write' as const, type },
      { name: `v${j}`, access: 'read_write' as const, type },
    ]),
    body: /* wgsl */ `
@compute @workgroup_size(${wg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * ${wg}u + li;
${pieces
  .map(
    (j) => `  if (i < P.e${j}) {
    let k = i${j === 0 ? '' : ` - P.e${j - 1}`};
    let gi = g${j}[k];
    let mi = P.beta1 * m${j}[k] + (1.0 - P.beta1) * gi;
    let vi = P.beta2 * v${j}[k] + (1.0 - P.beta2) * gi * gi;
    m${j}[k] = mi;
    v${j}[k] = vi;
    let mhat = mi / P.bc1;
    let vhat = vi / P.bc2;
    p${j}[k] = p${j}[k] * (1.0 - P.lr * P.decay) - P.lr * mhat / (sqrt(vhat) + P.eps);
    return;
  }`,
  )
  .join('\n')}
}`,
  };
  stepKernels.set(key, k);
  return k;
}

export class AdamW {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  stepCount = 0;
  private readonly m: Tensor[];
  private readonly v: Tensor[];
  private readonly eng: Engine;

  constructor(
    readonly params: Tensor[],
    o: AdamWOptions,
  ) {
    if (params.length === 0) throw new Error('AdamW: no parameters');
    this.eng = (params[0] as Tensor).engine;
    this.lr = o.lr;
    this.beta1 = o.beta1 ?? 0.9;
    this.beta2 = o.beta2 ?? 0.999;
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? 0.01;
    this.m = params.map((p) => this.eng.keep(this.eng.zeros(p.shape)));
    this.v = params.map((p) => this.eng.keep(this.eng.zeros(p.shape)));
  }

  setLr(lr: number): void {
    this.lr = lr;
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    this.stepCount++;
    const bc1 = 1 - this.beta1 ** this.stepCount;
    const bc2 = 1 - this.beta2 ** this.stepCount;
    const eng = this.eng;
    // Binding-sized pieces of every parameter with a gradient, updated a group of pieces per dispatch.
    const pieces: BufferRange[][] = [];
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      const g = p.grad;
      const m = this.m[i] as Tensor;
      const v = this.v[i] as Tensor;
      for (const c of eng.chunks(p.size, 1)) {
        pieces.push([p, g, m, v].map((t) => t.slice(c.start, c.count)));
      }
    });
    // GPUs may allow far more bindings; 8 pieces already make the dispatch count small.
    const perDispatch = Math.max(
      1,
      Math.min(MAX_PIECES, Math.floor(eng.device.limits.maxStorageBuffersPerShaderStage / 4)),
    );
    // Pieces that divide by 4 are updated by the vec4 kernel, the rest by the scalar one.
    for (const vec4 of [true, false]) {
      const kind = pieces.filter((r) => (((r[0] as BufferRange).size / 4) % 4 === 0) === vec4);
      const per = vec4 ? 4 : 1;
      for (let at = 0; at < kind.length; at += perDispatch) {
        const group = kind.slice(at, at + perDispatch);
        const ends: Record<string, number> = {};
        let total = 0;
        group.forEach((ranges, j) => {
          total += (ranges[0] as BufferRange).size / 4 / per;
          ends[`e${j}`] = total;
        });
        eng.dispatch(
          stepKernel(group.length, vec4),
          group.flat(),
          {
            ...ends,
            lr: this.lr,
            beta1: this.beta1,
            beta2: this.beta2,
            eps: this.eps,
            decay: this.weightDecay,
            bc1,
            bc2,
          },
          grid1d(eng, total, vec4 ? 64 : 256),
        );
      }
    }
  }

  async stateDict(): Promise<AdamWState> {
    const m: Float32Array[] = [];
    const v: Float32Array[] = [];
    for (let i = 0; i < this.params.length; i++) {
      m.push(await (this.m[i] as Tensor).read());
      v.push(await (this.v[i] as Tensor).read());
    }
    return {
      version: 1,
      step: this.stepCount,
      lr: this.lr,
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: this.weightDecay,
      m,
      v,
    };
  }

  loadStateDict(s: AdamWState): void {
    if (s.version !== 1 || s.m.length !== this.params.length || s.v.length !== this.params.length) {
      throw new Error(
        `AdamW.loadStateDict: state for ${s.m.length} parameters, optimiser has ${this.params.length}`,
      );
    }
    this.stepCount = s.step;
    this.lr = s.lr;
    this.params.forEach((p, i) => {
      const mi = s.m[i] as Float32Array;
      const vi = s.v[i] as Float32Array;
      if (mi.length !== p.size || vi.length !== p.size)
        throw new Error(`AdamW.loadStateDict: moment ${i} has the wrong size`);
      (this.m[i] as Tensor).dispose();
      (this.v[i] as Tensor).dispose();
      this.m[i] = this.eng.keep(this.eng.upload(mi, p.shape));
      this.v[i] = this.eng.keep(this.eng.upload(vi, p.shape));
    });
  }
}
