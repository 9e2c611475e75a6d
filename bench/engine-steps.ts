// The engine side of the training benches (bench/train.ts, bench/train-lm.ts), timed the same way: two warm-up
// steps, then `steps` timed ones of forward, backward, AdamW update and a loss read-back.
import type { Engine } from '../train-bridge/gpu/engine.ts';
import type { AdamW } from '../train-bridge/gpu/optim/adamw.ts';
import type { Tensor } from '../train-bridge/gpu/tensor.ts';

/**
 * Mean seconds of a training step on `eng`. Two warm-up steps are not counted: the first compiles the pipelines
 * and fills the buffer pool, the second makes the bind groups that later steps
 * reuse (on lavapipe it took ~30 ms longer than a later step at 64²).
 */
export async function meanStepSeconds(
  eng: Engine,
  optimizer: AdamW,
  params: Tensor[],
  steps: number,
  forward: () => Tensor,
): Promise<number> {
  const times: number[] = [];
  const warmUp = 2;
  for (let i = 0; i < warmUp + steps; i++) {
    const t0 = performance.now();
    const loss = eng.tidy(forward);
    eng.backward(loss);
    optimizer.step();
    eng.zeroGrad(params);
    await loss.read();
    loss.dispose();
    if (i >= warmUp) times.push((performance.now() - t0) / 1000);
  }
  return times.reduce((a, b) => a + b, 0) / times.length;
}
