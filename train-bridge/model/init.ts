// Deterministic weight initialisation following the reference: PyTorch's default conv init (±1/√fan_in),
// N(0, 0.02) truncated at ±2 for ConvFFN convs and linears, BN/LN at identity, layer scales at 1e-5.
// Each tensor draws from its own stream keyed by (seed, tensor name), so values never depend on build order.
import { keyedHash64 } from '../../core/keyed-hash.ts';
import { ConvFFN } from './fastvit-blocks.ts';
import type { HostTensor } from './host-tensor.ts';
import { BatchNorm2d, Conv2d, LayerNormChannel, Linear } from './layers.ts';
import type { Module } from './module.ts';

/** sfc32 (Chris Doty-Humphrey's small fast counting generator): 128-bit state, passes PractRand to 2^42 bytes. */
export class TensorRandom {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;
  private spareNormal: number | undefined;

  constructor(seed: number | bigint | string, purpose: string, tensorName: string) {
    const k = keyedHash64(seed, purpose, tensorName);
    this.a = Number(k >> 32n) >>> 0;
    this.b = Number(k & 0xffffffffn) >>> 0;
    this.c = Number(keyedHash64(seed, purpose, `${tensorName}#2`) >> 32n) >>> 0;
    for (let i = 0; i < 12; i++) this.nextUint32(); // mix the seed in before the first draw
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  nextUniform(): number {
    return ((this.nextUint32() >>> 5) * 67108864 + (this.nextUint32() >>> 6)) / 9007199254740992;
  }

  /** Standard normal (Box–Muller; each pair of uniforms gives two normals, the second kept for the next call). */
  nextNormal(): number {
    if (this.spareNormal !== undefined) {
      const v = this.spareNormal;
      this.spareNormal = undefined;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(1 - this.nextUniform())); // 1 − u ∈ (0, 1]: log stays finite
    const theta = 2 * Math.PI * this.nextUniform();
    this.spareNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }
}

export function fillUniform(t: HostTensor, rng: TensorRandom, bound: number): void {
  const d = t.data;
  for (let i = 0; i < d.length; i++) d[i] = (2 * rng.nextUniform() - 1) * bound;
}

/** N(0, std²) redrawn outside [lo, hi] — timm's trunc_normal_ (bounds are absolute values, ±2 by default). */
export function fillTruncNormal(t: HostTensor, rng: TensorRandom, std: number, lo = -2, hi = 2): void {
  const d = t.data;
  for (let i = 0; i < d.length; i++) {
    let v = rng.nextNormal() * std;
    while (v < lo || v > hi) v = rng.nextNormal() * std;
    d[i] = v;
  }
}

/** PyTorch's default Conv2d / Linear init: kaiming_uniform(a=√5) ⇒ U(±1/√fan_in) for weight and bias. */
export function defaultInit(
  weight: HostTensor,
  bias: HostTensor | undefined,
  fanIn: number,
  name: string,
  seed: number | bigint | string,
  purpose: string,
): void {
  const bound = 1 / Math.sqrt(fanIn);
  fillUniform(weight, new TensorRandom(seed, purpose, `${name}.weight`), bound);
  if (bias) fillUniform(bias, new TensorRandom(seed, purpose, `${name}.bias`), bound);
}

const TRUNC_STD = 0.02;

/** Initialise every tensor of a FastViTHD (sub)tree from `seed`; names are relative to `root`. */
export function initFastViTHD(root: Module, seed: number | bigint | string, layerScaleInit = 1e-5): void {
  const purpose = 'fastvithd-init';
  const ffnConvs = new Set<Module>();
  for (const [, m] of root.namedModules()) {
    if (m instanceof ConvFFN) for (const c of [m.conv.conv, m.fc1, m.fc2]) ffnConvs.add(c);
  }
  for (const [name, m] of root.namedModules()) {
    const join = (leaf: string) => (name === '' ? leaf : `${name}.${leaf}`);
    if (m instanceof Conv2d) {
      if (ffnConvs.has(m)) {
        // ConvFFN._init_weights: normal(std 0.02) weights, zero bias.
        fillTruncNormal(m.weight, new TensorRandom(seed, purpose, join('weight')), TRUNC_STD);
        m.bias?.fill(0);
      } else {
        defaultInit(m.weight, m.bias, m.fanIn, name, seed, purpose);
      }
    } else if (m instanceof Linear) {
      // FastViT.cls_init_weights: normal(std 0.02) weights, zero bias.
      fillTruncNormal(m.weight, new TensorRandom(seed, purpose, join('weight')), TRUNC_STD);
      m.bias?.fill(0);
    } else if (m instanceof BatchNorm2d) {
      m.weight.fill(1);
      m.bias.fill(0);
      m.runningMean.fill(0);
      m.runningVar.fill(1);
      m.numBatchesTracked.value = 0n;
    } else if (m instanceof LayerNormChannel) {
      m.weight.fill(1);
      m.bias.fill(0);
    }
  }
  for (const [name, t] of root.namedParameters()) {
    if (/(^|\.)layer_scale(_[12])?$/.test(name)) t.fill(layerScaleInit);
  }
}
