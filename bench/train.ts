// Training-step throughput of fastvithd-tiny on the WebGPU engine (lavapipe here) against Debian's python3-torch
// on the CPU running the same architecture, batch and step (train-mode BN forward, Σ out·probe, backward, AdamW)
// in the same run. Prints images/s, achieved GFLOP/s (3 × forward FLOPs per image) and the ratio.
// Usage: npx tsx bench/train.ts [--model fastvithd-tiny] [--resolution 128] [--batch 8] [--steps 5] [--torch-threads N]
// [--device cpu|cuda] [--python PATH] [--skip-torch]   (--device: where the PyTorch side runs)
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { lavapipeThreadsFor } from '../train-bridge/gpu/device.ts';
import { Engine } from '../train-bridge/gpu/engine.ts';
import { modelConfig } from '../train-bridge/model/fastvithd.ts';
import { modelInfo } from '../train-bridge/model/flops.ts';
import { meanStepSeconds } from './engine-steps.ts';
import { fastVitStep } from './fastvit-step.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'fastvithd-tiny' },
    resolution: { type: 'string', default: '128' },
    batch: { type: 'string', default: '8' },
    steps: { type: 'string', default: '5' },
    'torch-threads': { type: 'string', default: String(availableParallelism()) },
    'skip-torch': { type: 'boolean', default: false },
    device: { type: 'string', default: 'cpu' },
    python: { type: 'string', default: '/usr/bin/python3' },
  },
});
const model = values.model;
const r = Number(values.resolution);
const batch = Number(values.batch);
const steps = Number(values.steps);
const config = modelConfig(model);
const info = modelInfo(config, r);
// Backward costs about twice the forward (input and weight gradients): a step is ≈ 3 forward passes.
const stepFlops = 3 * info.flops * batch;

async function engineStep(): Promise<{ seconds: number; adapter: string }> {
  // As `mixforge train` creates its engine: lavapipe without its worker pool for a small pass (device.ts).
  const eng = await Engine.create({ lavapipeThreads: lavapipeThreadsFor(info.flops * batch) });
  const { params, optimizer, forward } = fastVitStep(eng, config, r, batch);
  const seconds = await meanStepSeconds(eng, optimizer, params, steps, forward);
  const adapter = eng.ctx.adapter.description || eng.ctx.adapter.device;
  eng.destroy();
  return { seconds, adapter };
}

function torchStep(): { seconds: number; torch: string; params: number } {
  const r2 = spawnSync(
    values.python,
    [
      'bench/train_torch.py',
      JSON.stringify(config),
      String(r),
      String(batch),
      String(steps),
      values['torch-threads'],
      values.device,
    ],
    { encoding: 'utf8' },
  );
  if (r2.status !== 0) throw new Error(`train_torch.py failed: ${r2.stderr}`);
  return JSON.parse(r2.stdout.trim().split('\n').at(-1) ?? '{}');
}

const gpu = await engineStep();
const row = (name: string, seconds: number) =>
  `${name.padEnd(34)} ${(seconds * 1000).toFixed(0).padStart(7)} ms/step  ${(batch / seconds).toFixed(2).padStart(7)} img/s  ${(stepFlops / seconds / 1e9).toFixed(2).padStart(6)} GFLOP/s`;
console.log(
  `${model} at ${r}², batch ${batch}, ${steps} timed steps; ${(info.flops / 1e6).toFixed(1)} MFLOPs forward per image`,
);
console.log(row(`WebGPU engine (${gpu.adapter})`, gpu.seconds));
if (!values['skip-torch']) {
  const torch = torchStep();
  const where = values.device === 'cpu' ? `CPU (${values['torch-threads']} threads)` : values.device;
  console.log(row(`PyTorch ${torch.torch} ${where}`, torch.seconds));
  console.log(
    `ratio engine/torch images/s: ${(torch.seconds / gpu.seconds).toFixed(2)}×  (params ${torch.params} both)`,
  );
}
