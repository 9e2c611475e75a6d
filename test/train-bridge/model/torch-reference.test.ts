// The CPU reference forward against PyTorch (Debian's python3-torch) running FastViTHD from the same state_dict:
// eval and train-mode BatchNorm, train and folded forms, through safetensors files written by each side.
// Skipped, saying so, where no Python with torch is installed (`apt-get install python3-torch`).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { forwardCpu } from '../../../train-bridge/model/cpu-backend.ts';
import { modelConfig } from '../../../train-bridge/model/fastvithd.ts';
import { BatchNorm2d } from '../../../train-bridge/model/layers.ts';
import { reparameterize } from '../../../train-bridge/model/reparameterize.ts';
import { stateDictTensors } from '../../../train-bridge/model/state-dict.ts';
import {
  readSafetensors,
  toBigInt64,
  toFloat32,
  writeSafetensors,
} from '../../../train-bridge/safetensors.ts';
import { maxAbs, maxAbsDiff, randomInput, tinyModel } from './fixtures.ts';

const SCRIPT = fileURLToPath(new URL('./torch_fastvithd.py', import.meta.url));

function findTorchPython(): string | undefined {
  const candidates = [process.env.MIXFORGE_TORCH_PYTHON, 'python3', '/usr/bin/python3'].filter(
    (c): c is string => !!c,
  );
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return undefined;
}

const python = findTorchPython();

describe('CPU reference forward vs PyTorch', {
  skip: python ? false : 'no python3 with torch installed',
}, () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mixforge-torch-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function runTorch(tensors: ReturnType<typeof stateDictTensors>, name: string) {
    const input = join(dir, `${name}-in.safetensors`);
    const output = join(dir, `${name}-out.safetensors`);
    await writeSafetensors(input, tensors);
    const config = modelConfig('fastvithd-tiny');
    const r = spawnSync(python!, [SCRIPT, JSON.stringify(config), input, output], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return readSafetensors(output);
  }

  it('agrees in eval and train mode (train form) and after folding', async () => {
    const model = tinyModel(41);
    // 128² so stage 5 is 2×2: train-mode BN over only N·H·W = 2 values per channel (64² input) is ill-conditioned
    // (two nearly equal values → variance ≈ 0 → float32 rounding amplified ~1/√eps), which says nothing about either side.
    const x = randomInput([2, 3, 128, 128], 41);
    const torchTrain = await runTorch(
      [...stateDictTensors(model), ['input', { dtype: 'F32', shape: x.shape, data: x.data }]],
      'train',
    );
    const evalOut = forwardCpu(model, x, 'eval');
    const torchEval = toFloat32(torchTrain.tensors.get('eval')!);
    const scale = maxAbs(evalOut.data);
    assert.ok(scale > 0.1);
    assert.ok(
      maxAbsDiff(evalOut.data, torchEval) <= 1e-4 * scale,
      `eval: ${maxAbsDiff(evalOut.data, torchEval)}`,
    );

    // Train mode mutates the model's running statistics, as PyTorch's does.
    const trainOut = forwardCpu(model, x, 'train');
    const torchTrainOut = toFloat32(torchTrain.tensors.get('train')!);
    assert.ok(maxAbsDiff(trainOut.data, torchTrainOut) <= 1e-4 * maxAbs(trainOut.data), 'train-mode output');
    let checked = 0;
    for (const [name, m] of model.namedModules()) {
      if (!(m instanceof BatchNorm2d)) continue;
      const mean = toFloat32(torchTrain.tensors.get(`${name}.running_mean`)!);
      const variance = toFloat32(torchTrain.tensors.get(`${name}.running_var`)!);
      assert.ok(maxAbsDiff(m.runningMean.data, mean) < 1e-5, `${name}.running_mean`);
      assert.ok(maxAbsDiff(m.runningVar.data, variance) < 1e-4 * maxAbs(variance), `${name}.running_var`);
      assert.deepEqual([...toBigInt64(torchTrain.tensors.get(`${name}.num_batches_tracked`)!)], [1n]);
      checked++;
    }
    assert.ok(checked > 30);

    const folded = tinyModel(41);
    reparameterize(folded);
    const torchFolded = await runTorch(
      [...stateDictTensors(folded), ['input', { dtype: 'F32', shape: x.shape, data: x.data }]],
      'folded',
    );
    const foldedTorch = toFloat32(torchFolded.tensors.get('eval')!);
    assert.ok(
      maxAbsDiff(foldedTorch, torchEval) <= 1e-4 * scale,
      'PyTorch: folded weights = train form in eval mode',
    );
    assert.ok(maxAbsDiff(forwardCpu(folded, x).data, foldedTorch) <= 1e-4 * scale);
  });
});
