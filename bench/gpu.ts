// GFLOP/s of the WebGPU engine's GEMM (square sizes and FastViTHD's 1×1-conv shapes, forward and the
// split-K weight gradient) and of depthwise 7×7 forward/backward, each against a naive one-thread-per-
// output kernel measured in the same run. Usage: npx tsx bench/gpu.ts [--sizes 256,512,1024]
// [--res 256] [--reps 3] [--peak-gflops N]. GEMM rows name the kernel the registry picks and also time
// the 64×64 tiled kernel (the GPU default below 128×128 outputs) for comparison.
import { parseArgs } from 'node:util';
import { Engine } from '../train-bridge/gpu/engine.ts';
import { forceGemmKernel, selectGemmKernel } from '../train-bridge/gpu/gemm/registry.ts';
import type { KernelDef } from '../train-bridge/gpu/kernel.ts';
import { grid1d } from '../train-bridge/gpu/kernels/elementwise.ts';
import * as ops from '../train-bridge/gpu/ops/index.ts';
import { matmulRaw } from '../train-bridge/gpu/ops/matmul.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string' },
    res: { type: 'string', default: '256' },
    reps: { type: 'string', default: '3' },
    'peak-gflops': { type: 'string' },
  },
});

const eng = await Engine.create({ log: (l) => console.log(l) });
const isCpu = eng.ctx.adapter.isCpu;
const sizes = (values.sizes ?? (isCpu ? '256,512,1024' : '256,512,1024,2048,4096')).split(',').map(Number);
const reps = Number(values.reps);
const peak = values['peak-gflops'] ? Number(values['peak-gflops']) : undefined;

function rand(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() - 0.5;
  return a;
}

/** Seconds per run: one warm-up (pipeline compilation), then the mean of `reps` synced runs. */
async function time(run: () => void): Promise<number> {
  eng.noGrad(() => eng.tidy(() => run()));
  await eng.sync();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) eng.noGrad(() => eng.tidy(() => run()));
  await eng.sync();
  return (performance.now() - t0) / 1000 / reps;
}

const rows: string[][] = [];
function report(what: string, flops: number, fast: number, naive: number, kernel = '', other = ''): void {
  const gf = flops / fast / 1e9;
  const gn = flops / naive / 1e9;
  const row = [what, gf.toFixed(2), gn.toFixed(2), (naive / fast).toFixed(2), (fast * 1000).toFixed(1)];
  row.push(kernel, other);
  if (peak) row.push(`${((100 * gf) / peak).toFixed(1)} %`);
  rows.push(row);
  console.log(row.join('\t'));
}

async function gemmCase(what: string, M: number, K: number, N: number, transA = false): Promise<void> {
  const a = eng.upload(rand(M * K), transA ? [K, M] : [M, K]);
  const b = eng.upload(rand(K * N), [K, N]);
  const run = () => {
    matmulRaw(a, b, { transA });
  };
  // The registry's own choice for this shape, then the 64×64 tiled kernel (the GPU default) and naive.
  const shape = { M, N, K, batch: 1, transA, transB: false, lda: 0, ldb: 0, ldc: 0 };
  const chosen = selectGemmKernel(eng, { ...shape, strideA: 0, strideB: 0, strideC: 0, alpha: 1, beta: 0 });
  const fast = await time(run);
  forceGemmKernel(eng, 'tiled64x64');
  const tiled = await time(run);
  forceGemmKernel(eng, 'naive');
  const naive = await time(run);
  forceGemmKernel(eng, undefined);
  report(what, 2 * M * N * K, fast, naive, chosen.name, ((2 * M * N * K) / tiled / 1e9).toFixed(2));
  a.dispose();
  b.dispose();
}

// Naive depthwise baselines: one thread per output for the forward, one thread per weight for the
// weight gradient (what tfjs-webgpu does), the same per-input gather for the input gradient.
const NAIVE_DW_FWD: KernelDef = {
  name: 'bench_naive_dw_fwd',
  uniforms: ['N', 'H', 'W', 'C', 'K', 'pad', 'total'],
  storage: [
    { name: 'x', access: 'read' },
    { name: 'w', access: 'read' },
    { name: 'y', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (wid.y * nwg.x + wid.x) * 64u + li;
  if (t >= P.total) { return; }
  let c = t % P.C; var r = t / P.C; let wo = r % P.W; r = r / P.W; let ho = r % P.H; let n = r / P.H;
  var s = 0.0;
  for (var kh = 0u; kh < P.K; kh++) { for (var kw = 0u; kw < P.K; kw++) {
    let h = i32(ho + kh) - i32(P.pad); let w_ = i32(wo + kw) - i32(P.pad);
    if (h >= 0 && h < i32(P.H) && w_ >= 0 && w_ < i32(P.W)) { s += x[((n * P.H + u32(h)) * P.W + u32(w_)) * P.C + c] * w[(kh * P.K + kw) * P.C + c]; }
  } }
  y[t] = s;
}`,
};
const NAIVE_DW_DW: KernelDef = {
  name: 'bench_naive_dw_weight_grad',
  uniforms: ['N', 'H', 'W', 'C', 'K', 'pad', 'total'],
  storage: [
    { name: 'x', access: 'read' },
    { name: 'dy', access: 'read' },
    { name: 'dw', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (wid.y * nwg.x + wid.x) * 64u + li;
  if (t >= P.total) { return; }
  let c = t % P.C; let kw = (t / P.C) % P.K; let kh = t / (P.C * P.K);
  var s = 0.0;
  for (var n = 0u; n < P.N; n++) { for (var ho = 0u; ho < P.H; ho++) { for (var wo = 0u; wo < P.W; wo++) {
    let h = i32(ho + kh) - i32(P.pad); let w_ = i32(wo + kw) - i32(P.pad);
    if (h >= 0 && h < i32(P.H) && w_ >= 0 && w_ < i32(P.W)) { s += x[((n * P.H + u32(h)) * P.W + u32(w_)) * P.C + c] * dy[((n * P.H + ho) * P.W + wo) * P.C + c]; }
  } } }
  dw[t] = s;
}`,
};

async function depthwiseCase(N: number, H: number, C: number): Promise<void> {
  const x = eng.upload(rand(N * H * H * C), [N, H, H, C]);
  const w = eng.upload(rand(49 * C), [7, 7, 1, C]);
  const u = { N, H, W: H, C, K: 7, pad: 3 };
  const flops = 2 * N * H * H * C * 49;
  const fast = await time(() => {
    ops.conv2d(x, w, { padding: 3, groups: C });
  });
  const naive = await time(() => {
    const y = eng.empty(x.shape);
    eng.dispatch(
      NAIVE_DW_FWD,
      [x.range(), w.range(), y.range()],
      { ...u, total: y.size },
      grid1d(eng, y.size, 64),
    );
  });
  report(`dw7x7 fwd [${N},${H},${H},${C}]`, flops, fast, naive);
  // Backward = input gradient + weight gradient (2× the forward's FLOPs); the tape gives our rule.
  const wp = eng.keep(eng.upload(rand(49 * C), [7, 7, 1, C]));
  wp.requiresGrad = true;
  const dy = eng.upload(rand(x.size), x.shape);
  const back = async (fn: () => void) => {
    fn();
    await eng.sync();
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    await eng.sync();
    return (performance.now() - t0) / 1000 / reps;
  };
  const ours = await back(() => {
    const y = ops.conv2d(x, wp, { padding: 3, groups: C });
    eng.backward(y, dy);
    y.dispose();
    eng.zeroGrad([wp]);
  });
  const dxDef = (await import('../train-bridge/gpu/kernels/conv2d-depthwise.ts')).depthwiseInputGradDef(
    7,
    7,
    1,
  );
  const naiveBack = await back(() => {
    eng.tidy(() => {
      const dwT = eng.empty(w.shape);
      eng.dispatch(
        NAIVE_DW_DW,
        [x.range(), dy.range(), dwT.range()],
        { ...u, total: dwT.size },
        grid1d(eng, dwT.size, 64),
      );
      const dx = eng.empty(x.shape);
      eng.dispatch(
        dxDef,
        [dy.range(), w.range(), dx.range()],
        {
          N,
          H,
          W: H,
          Cin: C,
          Cout: C,
          Ho: H,
          Wo: H,
          mult: 1,
          pad: 3,
          xbase: 0,
          ybase: 0,
          total: dx.size,
          cgroups: C,
          acc: 0,
        },
        grid1d(eng, dx.size, 64),
      );
      // The forward is part of both timings.
      ops.conv2d(x, w, { padding: 3, groups: C });
    });
  });
  report(`dw7x7 fwd+bwd [${N},${H},${H},${C}]`, 3 * flops, ours, naiveBack);
  for (const t of [x, w, wp, dy]) t.dispose();
}

console.log(
  [
    'case',
    'GFLOP/s',
    'naive GFLOP/s',
    'speed-up',
    'ms/run',
    'kernel',
    'tiled64x64 GFLOP/s',
    ...(peak ? ['of peak'] : []),
  ].join('\t'),
);
for (const s of sizes) await gemmCase(`gemm ${s}³`, s, s, s);
// FastViTHD ConvFFN fc1 (1×1 conv C→4C) at the bench resolution, batch 1: M = H·W, K = C, N = 4C.
const res = Number(values.res);
const stages = [96, 192, 384, 768, 1536];
for (const [i, C] of stages.entries()) {
  const hw = (res / 4 / 2 ** i) ** 2;
  await gemmCase(`fc1 M=${hw} K=${C} N=${4 * C}`, hw, C, 4 * C);
}
// Weight gradients of fc1 (Xᵀ·dY, reduction over pixels: split-K) for the two widest-spatial stages.
for (const [i, C] of stages.slice(0, 2).entries()) {
  const hw = (res / 4 / 2 ** i) ** 2;
  await gemmCase(`fc1 dW M=${C} K=${hw} N=${4 * C}`, C, hw, 4 * C, true);
}
await depthwiseCase(1, res / 4, 96);
await depthwiseCase(1, res / 16, 384);
console.log(`adapter: ${eng.ctx.adapter.description || eng.ctx.adapter.device}; reps ${reps}`);
eng.destroy();
