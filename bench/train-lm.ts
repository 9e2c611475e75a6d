// Training-step throughput of FastVLM (default fastvlm-tiny: FastViTHD-tiny → projector → Qwen2-tiny with Qwen2's
// 151,936-token vocabulary; or fastvlm-0.5b, randomly initialised) on the WebGPU engine against PyTorch (Debian's
// python3-torch on the CPU, or --device cuda) running the same step (forward, next-token loss, backward, AdamW) on the
// same weights and batch, in the same run. Prints tokens/s of each and the ratio.
// Usage: npx tsx bench/train-lm.ts [--model fastvlm-tiny] [--resolution 64] [--repeat 2] [--steps 3]
// [--torch-threads N] [--device cpu|cuda] [--python PATH] [--skip-torch] [--fast-init]
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ORACLE_CONVERSATIONS, oracleBatchTensors, randomImages, toNhwc } from '../dev/fastvlm-samples.ts';
import { Engine } from '../train-bridge/gpu/engine.ts';
import { AdamW } from '../train-bridge/gpu/optim/adamw.ts';
import { FastVLM, fastVLMConfig, initFastVLM } from '../train-bridge/model/fastvlm.ts';
import { FastVLMGpu } from '../train-bridge/model/fastvlm-gpu.ts';
import { stateDictTensors } from '../train-bridge/model/state-dict.ts';
import { writeSafetensors } from '../train-bridge/safetensors.ts';
import {
  collate,
  layoutSequence,
  loadQwen2Tokenizer,
  tokenizeConversation,
  tokensPerImageAt,
} from '../train-bridge/text/index.ts';
import { meanStepSeconds } from './engine-steps.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'fastvlm-tiny' },
    resolution: { type: 'string', default: '64' },
    repeat: { type: 'string', default: '2' },
    steps: { type: 'string', default: '3' },
    'torch-threads': { type: 'string', default: String(availableParallelism()) },
    device: { type: 'string', default: 'cpu' },
    python: { type: 'string', default: '/usr/bin/python3' },
    'skip-torch': { type: 'boolean', default: false },
    'fast-init': { type: 'boolean', default: false },
  },
});
const r = Number(values.resolution);
const steps = Number(values.steps);
const config = fastVLMConfig(values.model);

// The oracle's five conversations (triplets before/after, multi-turn, text-only, two images), `repeat` times.
const tok = await loadQwen2Tokenizer();
const convs = Array.from({ length: Number(values.repeat) }, () => ORACLE_CONVERSATIONS).flat();
const batch = collate(
  convs.map((t) =>
    layoutSequence(
      tokenizeConversation(t, tok, { imageTokenPosition: 'data', maxLength: 512 }),
      tokensPerImageAt(r),
      512,
    ),
  ),
  tok.padId,
);
const tokens = batch.attentionMask.reduce((a, b) => a + b, 0);
const images = randomImages(batch.imageSlots.length, r, 1);
const model = new FastVLM(config);
if (values['fast-init']) fastRandomInit(model);
else initFastVLM(model, 0);

/**
 * Weights for a speed figure only: every weight the constructor left at zero gets uniform noise of std 0.02 from
 * an xorshift stream (the model's own initialiser, truncated normals from a per-tensor hash stream, takes minutes
 * for 0.6 B parameters in JS); norms, BN statistics and layer scales keep the constructor's values.
 */
function fastRandomInit(m: FastVLM): void {
  let x = 0x9e3779b9;
  const half = 0.02 * Math.sqrt(3);
  for (const [name, t] of m.stateEntries()) {
    if (!name.endsWith('weight') || !(t.data instanceof Float32Array) || t.data.some((v) => v !== 0))
      continue;
    const d = t.data;
    for (let i = 0; i < d.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      d[i] = ((x >>> 0) / 2 ** 32 - 0.5) * 2 * half;
    }
  }
}

/** The PyTorch step: it reads the weights and batch before the engine trains (and changes) them. */
async function torchStep(): Promise<{ seconds: number; torch: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'mixforge-bench-lm-'));
  const file = join(dir, 'in.safetensors');
  await writeSafetensors(file, [...stateDictTensors(model), ...oracleBatchTensors(batch, images)]);
  const torch = spawnSync(
    values.python,
    [
      'bench/train_lm_torch.py',
      JSON.stringify({ vision: config.vision, lm: config.lm, visionTrain: true }),
      file,
      String(steps),
      values['torch-threads'],
      values.device,
    ],
    { encoding: 'utf8', maxBuffer: 1 << 26 },
  );
  await rm(dir, { recursive: true, force: true });
  if (torch.status !== 0) throw new Error(`train_lm_torch.py failed: ${torch.stderr}`);
  return JSON.parse(torch.stdout.trim().split('\n').at(-1) ?? '{}') as { seconds: number; torch: string };
}

async function engineStep(): Promise<{ seconds: number; adapter: string }> {
  const eng = await Engine.create();
  const gpu = new FastVLMGpu(eng, model);
  const params = gpu.weights.trainable().map((p) => p.tensor);
  const optimizer = new AdamW(params, { lr: 1e-4, weightDecay: 0 });
  const pixels = eng.upload(toNhwc(images.data, images.shape), [images.shape[0] as number, r, r, 3]);
  const seconds = await meanStepSeconds(eng, optimizer, params, steps, () => gpu.loss(batch, pixels));
  const adapter = eng.ctx.adapter.description || eng.ctx.adapter.device;
  gpu.dispose();
  eng.destroy();
  return { seconds, adapter };
}

const t = values['skip-torch'] ? undefined : await torchStep();
const gpu = await engineStep();
const row = (name: string, seconds: number) =>
  `${name.padEnd(40)} ${(seconds * 1000).toFixed(0).padStart(7)} ms/step  ${(tokens / seconds).toFixed(1).padStart(8)} tokens/s`;
console.log(
  `${values.model} at ${r}², ${batch.batch} sequences of ≤ ${batch.seqLen} (${tokens} real tokens, ${batch.imageSlots.length} images), ${steps} timed steps`,
);
console.log(row(`WebGPU engine (${gpu.adapter})`, gpu.seconds));
if (t) {
  const where = values.device === 'cpu' ? `CPU (${values['torch-threads']} threads)` : values.device;
  console.log(row(`PyTorch ${t.torch} ${where}`, t.seconds));
  console.log(`ratio engine/torch tokens/s: ${(t.seconds / gpu.seconds).toFixed(2)}×`);
}
