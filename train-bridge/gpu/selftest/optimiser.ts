// Selftest of AdamW and gradient clipping against plain CPU arithmetic (no TF.js reference needed).
import type { Engine } from '../engine.ts';
import { AdamW } from '../optim/adamw.ts';
import { clipGradNorm } from '../optim/clip-grad-norm.ts';
import { checked, compare, randomData, rng, type SelftestResult } from './harness.ts';

/** AdamW and gradient clipping against plain CPU arithmetic over three steps. */
export async function optimiserCases(eng: Engine): Promise<SelftestResult[]> {
  // 1032 elements (divisible by 4) take AdamW's vec4 kernel: its update is checked too.
  const [vec4] = await stepCases(eng, 1032, ', vec4');
  return [...(await stepCases(eng, 1031, '')), vec4 as SelftestResult];
}

async function stepCases(eng: Engine, n: number, label: string): Promise<SelftestResult[]> {
  const r = rng(99);
  const p0 = randomData(r, n, 'normal');
  const grads = [0, 1, 2].map(() => randomData(r, n, 'normal'));
  const o = { lr: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  const maxNorm = 5;
  // CPU reference
  const p = Float64Array.from(p0);
  const m = new Float64Array(n);
  const v = new Float64Array(n);
  const norms: number[] = [];
  grads.forEach((g, s) => {
    const norm = Math.sqrt(g.reduce((a, x) => a + x * x, 0));
    norms.push(norm);
    const f = Math.min(1, maxNorm / (norm + 1e-6));
    for (let i = 0; i < n; i++) {
      const gi = (g[i] as number) * f;
      m[i] = o.beta1 * (m[i] as number) + (1 - o.beta1) * gi;
      v[i] = o.beta2 * (v[i] as number) + (1 - o.beta2) * gi * gi;
      const mh = (m[i] as number) / (1 - o.beta1 ** (s + 1));
      const vh = (v[i] as number) / (1 - o.beta2 ** (s + 1));
      p[i] = (p[i] as number) * (1 - o.lr * o.weightDecay) - (o.lr * mh) / (Math.sqrt(vh) + o.eps);
    }
  });
  const param = eng.parameter(p0, [n]);
  const opt = new AdamW([param], o);
  const gotNorms: number[] = [];
  for (const g of grads) {
    eng.zeroGrad([param]);
    param.grad = eng.keep(eng.upload(g, [n]));
    const norm = clipGradNorm([param], maxNorm);
    opt.step();
    gotNorms.push(((await norm.read())[0] as number) ?? Number.NaN);
    norm.dispose();
  }
  const e = compare(await param.read(), Float32Array.from(p));
  const en = compare(Float32Array.from(gotNorms), Float32Array.from(norms));
  const state = await opt.stateDict();
  const roundTrip = new AdamW([param], o);
  roundTrip.loadStateDict(structuredClone(state));
  const em = compare((await roundTrip.stateDict()).m[0] as Float32Array, Float32Array.from(m));
  eng.zeroGrad([param]);
  param.dispose();
  return [
    checked('adamw', `3 steps, wd 0.1 (CPU reference)${label}`, e, 'param', 1e-5),
    checked('clipGradNorm', 'max 5 over 3 steps', en, 'norm', 1e-5),
    checked('adamw', 'stateDict JSON round trip', em, 'm', 1e-6),
  ];
}
