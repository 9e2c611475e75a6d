// GFLOP/s of every GEMM kernel the engine can run on this adapter, square sizes, with the fraction of the
// adapter's FP32 peak (bench/fp32-peak.ts) and, with --torch DEVICE, torch.matmul on the same sizes in FP32
// (TF32 off) from bench/gemm_torch.py. Usage: npx tsx bench/gemm.ts [--sizes 1024,2048,4096,8192]
// [--kernels a,b] [--min-seconds 0.3] [--naive-max 2048] [--peak-tflops N] [--torch cuda|cpu] [--python PATH]
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Engine } from '../train-bridge/gpu/engine.ts';
import { forceGemmKernel, runnableGemmKernels, selectGemmKernel } from '../train-bridge/gpu/gemm/registry.ts';
import { matmulRaw } from '../train-bridge/gpu/ops/matmul.ts';
import { describePeak, fp32Peak } from './fp32-peak.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1024,2048,4096,8192' },
    kernels: { type: 'string' },
    'min-seconds': { type: 'string', default: '0.3' },
    'naive-max': { type: 'string', default: '2048' },
    'peak-tflops': { type: 'string' },
    torch: { type: 'string' },
    python: { type: 'string', default: '/usr/bin/python3' },
  },
});
const sizes = values.sizes.split(',').map(Number);
const minSeconds = Number(values['min-seconds']);

const eng = await Engine.create();
const adapter = eng.ctx.adapter.description || eng.ctx.adapter.device;
const peak = fp32Peak(adapter, values['peak-tflops'] ? Number(values['peak-tflops']) : undefined);
const wanted = values.kernels?.split(',');
const kernels = runnableGemmKernels(eng).filter((k) => !wanted || wanted.includes(k.name));

function rand(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = ((i * 2654435761) >>> 0) / 2 ** 32 - 0.5;
  return a;
}

/** Seconds per GEMM: one warm-up (compiles), then synced batches of runs until `minSeconds` have passed. */
async function time(run: () => void): Promise<number> {
  eng.noGrad(() => eng.tidy(run));
  await eng.sync();
  let reps = 0;
  const t0 = performance.now();
  let batch = 1;
  while (performance.now() - t0 < minSeconds * 1000) {
    for (let i = 0; i < batch; i++) eng.noGrad(() => eng.tidy(run));
    await eng.sync();
    reps += batch;
    batch *= 2;
  }
  return (performance.now() - t0) / 1000 / reps;
}

const torchGflops = new Map<number, number>();
if (values.torch) {
  const r = spawnSync(
    values.python,
    ['bench/gemm_torch.py', values.torch, values.sizes, String(minSeconds)],
    {
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) console.log(`torch GEMM failed: ${r.stderr.trim().split('\n').at(-1)}`);
  else {
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as {
      gflops: Record<string, number>;
      torch: string;
      device: string;
    };
    for (const [n, g] of Object.entries(out.gflops)) torchGflops.set(Number(n), g);
    console.log(`PyTorch ${out.torch} on ${out.device}, FP32 matmul (TF32 off)`);
  }
}

console.log(`adapter: ${adapter}; ${describePeak(adapter, peak)}`);
const header = ['size', 'kernel', 'picked', 'GFLOP/s', 'ms', ...(peak ? ['of peak'] : [])];
if (values.torch) header.push('torch GFLOP/s', 'engine/torch');
console.log(header.join('\t'));
for (const n of sizes) {
  const a = eng.upload(rand(n * n), [n, n]);
  const b = eng.upload(rand(n * n).reverse(), [n, n]);
  const flops = 2 * n * n * n;
  const shape = { M: n, N: n, K: n, batch: 1, transA: false, transB: false, lda: n, ldb: n, ldc: n };
  const picked = selectGemmKernel(eng, { ...shape, strideA: 0, strideB: 0, strideC: 0, alpha: 1, beta: 0 });
  const tg = torchGflops.get(n);
  for (const k of kernels) {
    if (k.name === 'naive' && n > Number(values['naive-max'])) continue;
    forceGemmKernel(eng, k.name);
    let row: string[];
    try {
      const s = await time(() => {
        matmulRaw(a, b);
      });
      const gf = flops / s / 1e9;
      row = [`${n}³`, k.name, k.name === picked.name ? '*' : '', gf.toFixed(1), (s * 1000).toFixed(2)];
      if (peak) row.push(`${((100 * gf) / (peak.tflops * 1000)).toFixed(1)} %`);
      if (values.torch) row.push(tg ? tg.toFixed(1) : '-', tg ? (gf / tg).toFixed(2) : '-');
    } catch (e) {
      row = [`${n}³`, k.name, '', `failed: ${(e as Error).message.split('\n')[0]}`];
    }
    console.log(row.join('\t'));
  }
  forceGemmKernel(eng, undefined);
  a.dispose();
  b.dispose();
}
console.log(`'picked' marks the kernel the registry chooses for this shape on this adapter`);
eng.destroy();
