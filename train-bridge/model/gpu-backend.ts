// FastViTHD (and the projector, text tower) on the WebGPU engine: the ForwardBackend<Tensor> the shared
// forward runs on, reading its weights from a GpuWeights store.
import * as ops from '../gpu/ops/index.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { ForwardBackend } from './forward.ts';
import type { GpuWeights } from './gpu-weights.ts';
import type { HostTensor } from './host-tensor.ts';
import type { BatchNorm2d, Conv2d, LayerNormChannel, Linear } from './layers.ts';

/**
 * 'eval': running statistics. 'train': batch statistics, running statistics updated (PyTorch's train()).
 * 'batch': batch statistics with the running statistics left alone (evaluating a model as it trains).
 */
export type GpuBatchNormMode = 'eval' | 'train' | 'batch';

/**
 * ForwardBackend on the engine. Feature maps are NHWC [N, H, W, C] (the interface's logical NCHW shapes map onto
 * them), so tokens are a free reshape. Images come in as [N, H, W, 3].
 */
export class GpuBackend implements ForwardBackend<Tensor> {
  /** Selector rows that pick q, k or v out of the stacked [3, …] qkv values with a K = 3 matmul. */
  private readonly selectors: Tensor[];

  constructor(
    readonly weights: GpuWeights,
    readonly batchNormMode: GpuBatchNormMode,
  ) {
    const eng = weights.eng;
    this.selectors = [0, 1, 2].map((i) =>
      eng.keep(
        eng.upload(
          Float32Array.from([0, 1, 2], (j) => (j === i ? 1 : 0)),
          [1, 3],
        ),
      ),
    );
  }

  dispose(): void {
    for (const s of this.selectors) s.dispose();
  }

  spatialSize(x: Tensor): [number, number] {
    return [x.shape[1] as number, x.shape[2] as number];
  }

  conv2d(x: Tensor, conv: Conv2d): Tensor {
    const y = this.convNoBias(x, conv);
    return conv.bias ? ops.add(y, this.weights.tensor(conv.bias)) : y;
  }

  conv2dGelu(x: Tensor, conv: Conv2d): Tensor {
    const y = this.convNoBias(x, conv);
    return conv.bias ? ops.biasGelu(y, this.weights.tensor(conv.bias)) : ops.gelu(y);
  }

  private convNoBias(x: Tensor, conv: Conv2d): Tensor {
    return ops.conv2d(x, this.weights.tensor(conv.weight), {
      stride: conv.stride,
      padding: conv.padding,
      groups: conv.groups,
    });
  }

  batchNorm2d(x: Tensor, bn: BatchNorm2d): Tensor {
    const state = this.weights.batchNorm(bn);
    if (this.batchNormMode === 'eval') return ops.batchNorm(x, state, false);
    if (this.batchNormMode === 'train') {
      // PyTorch counts batches seen in train mode; the counter is host-side state saved with the weights.
      bn.numBatchesTracked.value += 1n;
      return ops.batchNorm(x, state, true);
    }
    // The engine's training mode always updates running statistics: give it throwaway copies.
    const eng = x.engine;
    const runningMean = eng.clone(state.runningMean);
    const runningVar = eng.clone(state.runningVar);
    const y = ops.batchNorm(x, { ...state, runningMean, runningVar }, true);
    runningMean.dispose();
    runningVar.dispose();
    return y;
  }

  batchNorm2dAdd(x: Tensor, bn: BatchNorm2d, addend: Tensor): Tensor {
    if (this.batchNormMode !== 'train') return ops.add(addend, this.batchNorm2d(x, bn));
    bn.numBatchesTracked.value += 1n;
    return ops.batchNorm(x, this.weights.batchNorm(bn), true, addend);
  }

  layerNormChannel(x: Tensor, ln: LayerNormChannel): Tensor {
    return ops.layerNormChannel(x, this.weights.tensor(ln.weight), this.weights.tensor(ln.bias), ln.eps);
  }

  gelu(x: Tensor): Tensor {
    return ops.gelu(x);
  }

  relu(x: Tensor): Tensor {
    return ops.relu(x);
  }

  sigmoid(x: Tensor): Tensor {
    return ops.sigmoid(x);
  }

  add(a: Tensor, b: Tensor): Tensor {
    return ops.add(a, b);
  }

  sub(a: Tensor, b: Tensor): Tensor {
    return ops.sub(a, b);
  }

  scaleChannels(x: Tensor, scale: HostTensor): Tensor {
    return ops.mul(x, this.weights.tensor(scale));
  }

  addScaled(x: Tensor, y: Tensor, scale: HostTensor): Tensor {
    return ops.addScaled(x, y, this.weights.tensor(scale));
  }

  addScaledConv(x: Tensor, h: Tensor, conv: Conv2d, scale: HostTensor): Tensor {
    const bias = conv.bias ? this.weights.tensor(conv.bias) : undefined;
    return ops.addScaled(x, this.convNoBias(h, conv), this.weights.tensor(scale), bias);
  }

  addAll(xs: Tensor[]): Tensor {
    return ops.addAll(xs);
  }

  meanSpatial(x: Tensor): Tensor {
    const [n, , , c] = x.shape as [number, number, number, number];
    return ops.reshape(ops.meanSpatial(x), [n, 1, 1, c]);
  }

  mulChannels(x: Tensor, gate: Tensor): Tensor {
    const [n, h, w, c] = x.shape as [number, number, number, number];
    if (n === 1) return ops.mul(x, ops.reshape(gate, [c]));
    // The engine broadcasts trailing dims only: bring the image axis next to the channels ([HW, N, C]), where
    // the [N, C] gate is a suffix. Only the SE block at 1/64 resolution uses this, so the copies are small.
    const spatialFirst = ops.permute(ops.reshape(x, [n, h * w, c]), [1, 0, 2]);
    const gated = ops.mul(spatialFirst, ops.reshape(gate, [n, c]));
    return ops.reshape(ops.permute(gated, [1, 0, 2]), [n, h, w, c]);
  }

  toTokens(x: Tensor): Tensor {
    const [n, h, w, c] = x.shape as [number, number, number, number];
    return ops.reshape(x, [n, h * w, c]);
  }

  fromTokens(x: Tensor, height: number, width: number): Tensor {
    const [n, , c] = x.shape as [number, number, number];
    return ops.reshape(x, [n, height, width, c]);
  }

  linear(x: Tensor, linear: Linear): Tensor {
    const bias = linear.bias ? this.weights.tensor(linear.bias) : undefined;
    return ops.linear(x, this.weights.tensor(linear.weight), bias);
  }

  multiHeadAttention(qkv: Tensor, numHeads: number, headDim: number): Tensor {
    const [n, l] = qkv.shape as [number, number, number];
    const dim = numHeads * headDim;
    // (N, L, 3, heads, hd) → (3, N, heads, L, hd): q, k and v become contiguous thirds with heads folded
    // into the batch, the layout the engine's attention takes.
    const stacked = ops.reshape(
      ops.permute(ops.reshape(qkv, [n, l, 3, numHeads, headDim]), [2, 0, 3, 1, 4]),
      [3, n * numHeads * l * headDim],
    );
    const [q, k, v] = this.selectors.map((s) =>
      ops.reshape(ops.matmul(s, stacked), [n * numHeads, l, headDim]),
    );
    const attended = ops.attention(q, k, v, { scale: headDim ** -0.5 });
    return ops.reshape(ops.permute(ops.reshape(attended, [n, numHeads, l, headDim]), [0, 2, 1, 3]), [
      n,
      l,
      dim,
    ]);
  }
}
