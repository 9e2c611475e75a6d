// Fixtures for the FastVLM objective tests: a fastvlm-tiny whose every tensor is far from its init (so each one
// changes the loss measurably), seeded images, and micro-batches of the sample kinds the recipe trains on.

import { ORACLE_CONVERSATIONS, randomImages } from '../../../dev/fastvlm-samples.ts';
import { FastVLM, fastVLMConfig, initFastVLM } from '../../../train-bridge/model/fastvlm.ts';
import { fillUniform, TensorRandom } from '../../../train-bridge/model/init.ts';
import {
  type ConversationTurn,
  collate,
  layoutSequence,
  loadQwen2Tokenizer,
  type SequenceLayout,
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

/** Conversations (default: the oracle's) tokenized and laid out by the text path exactly as training does. */
export async function oracleLayouts(
  resolution: number,
  conversations: readonly ConversationTurn[][] = ORACLE_CONVERSATIONS,
): Promise<SequenceLayout[]> {
  const tok = await loadQwen2Tokenizer();
  const perImage = tokensPerImageAt(resolution);
  return conversations.map((turns) =>
    layoutSequence(
      tokenizeConversation(turns, tok, { imageTokenPosition: 'data', maxLength: 512 }),
      perImage,
      512,
    ),
  );
}

/** The oracle's micro-batch, tokenized and laid out by the text path exactly as training does. */
export async function oracleBatch(
  resolution: number,
): Promise<{ batch: TextBatch; images: { data: Float32Array; shape: number[] } }> {
  const tok = await loadQwen2Tokenizer();
  const batch = collate(await oracleLayouts(resolution), tok.padId);
  return { batch, images: randomImages(batch.imageSlots.length, resolution, 5) };
}

export { ORACLE_CONVERSATIONS, randomImages, toNhwc } from '../../../dev/fastvlm-samples.ts';
