// Fixtures for the FastVLM objective tests: a fastvlm-tiny whose every tensor is far from its init (so each one
// changes the loss measurably), seeded images, and micro-batches of the sample kinds the recipe trains on.
import { FastVLM, fastVLMConfig, initFastVLM } from '../../../train-bridge/model/fastvlm.ts';
import { fillUniform, TensorRandom } from '../../../train-bridge/model/init.ts';
import {
  type ConversationTurn,
  collate,
  layoutSequence,
  loadQwen2Tokenizer,
  type TextBatch,
  tokenizeConversation,
  tokensPerImageAt,
} from '../../../train-bridge/text/index.ts';
import { perturbStatistics } from './fixtures.ts';

/** fastvlm-tiny with BN/layer scales perturbed and LM weights at O(1/√fan-in), norms at 1 ± 0.3, biases ± 0.1. */
export function oracleModel(seed: number): FastVLM {
  const model = new FastVLM(fastVLMConfig('fastvlm-tiny'));
  initFastVLM(model, seed);
  perturbStatistics(model.vision, seed);
  const vision = new Set([...model.vision.namedParameters()].map(([, t]) => t));
  for (const [name, t] of model.namedParameters()) {
    if (vision.has(t)) continue;
    const rng = new TensorRandom(seed, 'oracle-lm', name);
    if (name.endsWith('norm.weight')) {
      fillUniform(t, rng, 0.3);
      for (let i = 0; i < t.numel; i++) t.data[i] += 1;
    } else if (name.endsWith('.bias')) fillUniform(t, rng, 0.1);
    else fillUniform(t, rng, 1.5 / Math.sqrt(t.shape.at(-1) as number));
  }
  return model;
}

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

/** The oracle's micro-batch, tokenized and laid out by the text path exactly as training does. */
export async function oracleBatch(
  resolution: number,
): Promise<{ batch: TextBatch; images: { data: Float32Array; shape: number[] } }> {
  const tok = await loadQwen2Tokenizer();
  const perImage = tokensPerImageAt(resolution);
  const layouts = ORACLE_CONVERSATIONS.map((turns) =>
    layoutSequence(
      tokenizeConversation(turns, tok, { imageTokenPosition: 'data', maxLength: 512 }),
      perImage,
      512,
    ),
  );
  const batch = collate(layouts, tok.padId);
  return { batch, images: randomImages(batch.imageSlots.length, resolution, 5) };
}
