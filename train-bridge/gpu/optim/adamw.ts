// AdamW with decoupled weight decay (Loshchilov & Hutter; PyTorch's torch.optim.AdamW): per parameter
// p ← p·(1 − lr·wd) − lr·m̂/(√v̂ + ε), one fused kernel per parameter, moments kept on the GPU.
import type { Engine } from '../engine.ts';
import type { KernelDef } from '../kernel.ts';
import { grid1d } from '../kernels/elementwise.ts';
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
const STEP: KernelDef = {
  name: 'adamw_step',
  uniforms: ['n', 'lr:f32', 'beta1:f32', 'beta2:f32', 'eps:f32', 'decay:f32', 'bc1:f32', 'bc2:f32'],
  storage: [
    { name: 'p', access: 'read_write' },
    { name: 'g', access: 'read' },
    { name: 'm', access: 'read_write' },
    { name: 'v', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= P.n) { return; }
  let gi = g[i];
  let mi = P.beta1 * m[i] + (1.0 - P.beta1) * gi;
  let vi = P.beta2 * v[i] + (1.0 - P.beta2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  let mhat = mi / P.bc1;
  let vhat = vi / P.bc2;
  p[i] = p[i] * (1.0 - P.lr * P.decay) - P.lr * mhat / (sqrt(vhat) + P.eps);
}`,
};

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
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      const g = p.grad;
      const m = this.m[i] as Tensor;
      const v = this.v[i] as Tensor;
      for (const c of eng.chunks(p.size, 1)) {
        const r = (t: Tensor) => t.slice(c.start, c.count);
        eng.dispatch(
          STEP,
          [r(p), r(g), r(m), r(v)],
          {
            n: c.count,
            lr: this.lr,
            beta1: this.beta1,
            beta2: this.beta2,
            eps: this.eps,
            decay: this.weightDecay,
            bc1,
            bc2,
          },
          grid1d(eng, c.count),
        );
      }
    });
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
