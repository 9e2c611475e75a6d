// Fixtures for the FastVLM objective tests: a fastvlm-tiny whose every tensor is far from its init (so each one
// changes the loss measurably), seeded images, and micro-batches of the sample kinds the recipe trains on.
import { FastVLM, fastVLMConfig, initFastVLM } from '../../../train-bridge/model/fastvlm.ts';
import type { LmBatch } from '../../../train-bridge/model/fastvlm-gpu.ts';
import { fillUniform, TensorRandom } from '../../../train-bridge/model/init.ts';
import { IGNORE_INDEX } from '../../../train-bridge/model/lm-ops.ts';
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

type Segment = { text: number; labelled?: boolean } | { image: true };

/**
 * Right-padded batch of sequences made of segments (random ids; labels on `labelled` text), image segments
 * filled by `tokensPerImage` slots; images stacked in slot order.
 */
export function segmentBatch(samples: Segment[][], tokensPerImage: number, seed: number): LmBatch {
  const lengths = samples.map((s) => s.reduce((n, g) => n + ('image' in g ? tokensPerImage : g.text), 0));
  const L = Math.max(...lengths);
  const B = samples.length;
  const rng = new TensorRandom(seed, 'oracle-ids', 'batch');
  const tokenIds = new Int32Array(B * L).fill(151643);
  const labels = new Int32Array(B * L).fill(IGNORE_INDEX);
  const positionIds = new Int32Array(B * L);
  const attentionMask = new Uint8Array(B * L);
  const imageSlots: LmBatch['imageSlots'][number][] = [];
  samples.forEach((segments, b) => {
    let p = 0;
    for (const g of segments) {
      if ('image' in g) {
        imageSlots.push({ sample: b, start: p, count: tokensPerImage });
        for (let j = 0; j < tokensPerImage; j++) tokenIds[b * L + p++] = -1;
        continue;
      }
      for (let j = 0; j < g.text; j++, p++) {
        const id = Math.floor(rng.nextUniform() * 151936);
        tokenIds[b * L + p] = id;
        if (g.labelled) labels[b * L + p] = id;
      }
    }
    for (let i = 0; i < p; i++) {
      positionIds[b * L + i] = i;
      attentionMask[b * L + i] = 1;
    }
  });
  return { batch: B, seqLen: L, tokenIds, labels, positionIds, attentionMask, imageSlots };
}

/** The oracle's micro-batch: before/after triplets, a multi-turn, a text-only and a two-image sample. */
export async function oracleBatch(resolution: number) {
  const perImage = (resolution / 64) ** 2;
  const sys = { text: 6 };
  const batch = segmentBatch(
    [
      [sys, { image: true }, { text: 5 }, { text: 7, labelled: true }],
      [sys, { text: 5 }, { image: true }, { text: 9, labelled: true }],
      [
        sys,
        { image: true },
        { text: 4 },
        { text: 5, labelled: true },
        { text: 4 },
        { text: 6, labelled: true },
      ],
      [sys, { text: 6 }, { text: 8, labelled: true }],
      [sys, { image: true }, { image: true }, { text: 3 }, { text: 4, labelled: true }],
    ],
    perImage,
    11,
  );
  return { batch, images: randomImages(batch.imageSlots.length, resolution, 5) };
}
