// Sample inputs shared by the FastVLM tests and benchmarks: the oracle's five conversations (the sample kinds the
// recipe trains on), seeded images, and NCHW → NHWC.
import { TensorRandom } from '../train-bridge/model/init.ts';
import type { TensorToWrite } from '../train-bridge/safetensors.ts';
import type { ConversationTurn } from '../train-bridge/text/index.ts';

/** Seeded images [N, 3, R, R] in [0, 1). */
export function randomImages(n: number, r: number, seed: number): { data: Float32Array; shape: number[] } {
  const rng = new TensorRandom(seed, 'oracle-images', `${n}x${r}`);
  return { data: Float32Array.from({ length: n * 3 * r * r }, () => rng.nextUniform()), shape: [n, 3, r, r] };
}

export function toNhwc(data: Float32Array, shape: readonly number[]): Float32Array {
  const [n, c, h, w] = shape as [number, number, number, number];
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let p = 0; p < h * w; p++)
        out[(b * h * w + p) * c + ch] = data[(b * c + ch) * h * w + p] as number;
  return out;
}

/**
 * The batch and images as the PyTorch oracle (torch_fastvlm.py) reads them from safetensors: every field as F32,
 * image slots as (sample, start, count) rows.
 */
export function oracleBatchTensors(
  batch: {
    batch: number;
    seqLen: number;
    tokenIds: ArrayLike<number>;
    labels: ArrayLike<number>;
    positionIds: ArrayLike<number>;
    attentionMask: ArrayLike<number>;
    imageSlots: readonly { sample: number; start: number; count: number }[];
  },
  images: { data: Float32Array; shape: number[] },
): Array<[string, TensorToWrite]> {
  const f32 = (a: ArrayLike<number>) => Float32Array.from(a);
  const bl = [batch.batch, batch.seqLen];
  return [
    ['images', { dtype: 'F32', shape: images.shape, data: images.data }],
    ['token_ids', { dtype: 'F32', shape: bl, data: f32(batch.tokenIds) }],
    ['labels', { dtype: 'F32', shape: bl, data: f32(batch.labels) }],
    ['position_ids', { dtype: 'F32', shape: bl, data: f32(batch.positionIds) }],
    ['attention_mask', { dtype: 'F32', shape: bl, data: f32(batch.attentionMask) }],
    [
      'image_slots',
      {
        dtype: 'F32',
        shape: [batch.imageSlots.length, 3],
        data: Float32Array.from(batch.imageSlots.flatMap((s) => [s.sample, s.start, s.count])),
      },
    ],
  ];
}

/** The oracle's conversations: before/after-placed triplets, a multi-turn, a text-only and a two-image sample. */
export const ORACLE_CONVERSATIONS: ConversationTurn[][] = [
  [
    { from: 'human', value: '<image>\nWhat is in this photo?' },
    { from: 'gpt', value: 'A red bicycle leans against a brick wall.' },
  ],
  [
    { from: 'human', value: 'Describe the image in detail.\n<image>' },
    { from: 'gpt', value: 'Two cats sleep on a blue sofa near a window.' },
  ],
  [
    { from: 'human', value: '<image>\nWhat colour is the car?' },
    { from: 'gpt', value: 'It is green.' },
    { from: 'human', value: 'How many wheels can you see?' },
    { from: 'gpt', value: 'Three of them.' },
  ],
  [
    { from: 'human', value: 'What is the capital of France?' },
    { from: 'gpt', value: 'Paris.' },
  ],
  [
    { from: 'human', value: '<image>\n<image>\nWhat differs between the two pictures?' },
    { from: 'gpt', value: 'The second one is taken at night.' },
  ],
];
