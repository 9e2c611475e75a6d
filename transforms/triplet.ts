// Stage-1.5 triplets (FastVLM's recipe): each (image, dense caption) becomes (question, image, caption), the
// question one of 300 generic ones and the `<image>` placement chosen by keyed hashes of (seed, id), never an RNG.
import { readFileSync } from 'node:fs';
import { keyedChoice, keyedUniform } from '../core/keyed-hash.ts';
import type { QuarantineRecord } from '../core/quarantine.ts';
import { IMAGE_TOKEN, type NormalisedRecord } from './normalise.ts';

/** The bank of generic description questions (transforms/triplet-questions.json, exactly 300, distinct). */
export const TRIPLET_QUESTIONS: readonly string[] = Object.freeze(
  JSON.parse(readFileSync(new URL('./triplet-questions.json', import.meta.url), 'utf8')) as string[],
);

/** Purposes of the keyed hashes: part of the recipe, so changing them changes every built mixture. */
export const QUESTION_PURPOSE = 'triplet-question';
export const PLACEMENT_PURPOSE = 'triplet-placement';

export function tripletQuestion(seed: number | string, id: string): string {
  return TRIPLET_QUESTIONS[keyedChoice(seed, QUESTION_PURPOSE, id, TRIPLET_QUESTIONS.length)];
}

/** True when `<image>` goes before the question (probability 0.5 over ids). */
export function imageBeforeQuestion(seed: number | string, id: string): boolean {
  return keyedUniform(seed, PLACEMENT_PURPOSE, id) < 0.5;
}

export function placeImageToken(question: string, before: boolean): string {
  return before ? `${IMAGE_TOKEN}\n${question}` : `${question}\n${IMAGE_TOKEN}`;
}

/**
 * Replaces the source's prompt with a generic question and keeps its dense caption (the one `gpt` turn) as the
 * answer. Needs exactly one image and one non-empty gpt turn; anything else is quarantined as
 * `not-a-caption-pair` rather than guessing which turn is the caption. A leading system turn is dropped: the
 * triplet is the whole conversation.
 */
export function makeTriplet(
  record: NormalisedRecord,
  seed: number | string,
): NormalisedRecord | QuarantineRecord {
  const captions = record.conversations.filter((t) => t.from === 'gpt');
  const problem =
    record.images.length !== 1
      ? `expected 1 image, got ${record.images.length}`
      : captions.length !== 1
        ? `expected 1 gpt caption turn, got ${captions.length}`
        : captions[0].value === ''
          ? 'the caption is empty'
          : undefined;
  if (problem) {
    return {
      origin: record.origin,
      source: record.source,
      stage: 'normalise',
      reason: 'not-a-caption-pair',
      message: `triplet: ${problem}`,
      id: record.id,
    };
  }
  const question = placeImageToken(tripletQuestion(seed, record.id), imageBeforeQuestion(seed, record.id));
  return {
    ...record,
    conversations: [
      { from: 'human', value: question },
      { from: 'gpt', value: captions[0].value },
    ],
  };
}
