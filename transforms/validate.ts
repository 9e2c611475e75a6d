// Validate: the sample invariants of DESIGN.md on a normalised record. A failure is a quarantine record with a
// fixed reason (core/quarantine.ts, docs/quarantine.md); checks run in a fixed order so each record gets one reason.
import type { QuarantineReason, QuarantineRecord } from '../core/quarantine.ts';
import type { Turn } from '../core/schema.ts';
import { countImageTokens, type NormalisedRecord } from './normalise.ts';

/** A lone UTF-16 surrogate (in `u` mode a paired one is a single code point and does not match). */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Text that cannot be encoded as UTF-8 (lone surrogates), or carries U+FFFD: the mark of an earlier bad decode. */
export function isValidText(text: string): boolean {
  return !LONE_SURROGATE.test(text) && !text.includes('\uFFFD');
}

/**
 * Roles alternate human, gpt, human, gpt, … after an optional leading system turn, and the conversation ends
 * with a gpt turn (a trailing question has no answer to train on). Returns what is wrong, or undefined.
 */
export function roleProblem(turns: readonly Turn[]): string | undefined {
  const start = turns[0]?.from === 'system' ? 1 : 0;
  if (turns.length - start === 0) return 'only a system turn';
  for (let i = start; i < turns.length; i++) {
    const expected = (i - start) % 2 === 0 ? 'human' : 'gpt';
    if (turns[i].from !== expected) return `turn ${i} is '${turns[i].from}', expected '${expected}'`;
  }
  if (turns[turns.length - 1].from !== 'gpt') return 'the conversation ends with a human turn';
  return undefined;
}

export function validateRecord(record: NormalisedRecord): QuarantineRecord | undefined {
  const fail = (reason: QuarantineReason, message: string): QuarantineRecord => ({
    origin: record.origin,
    source: record.source,
    stage: 'validate',
    reason,
    message,
    id: record.id,
  });
  const turns = record.conversations;
  if (turns.length === 0) return fail('no-conversation', 'the conversation has no turns');
  const badText = turns.findIndex((t) => !isValidText(t.value));
  if (badText !== -1) return fail('invalid-utf8', `turn ${badText} has a lone surrogate or U+FFFD`);
  const roles = roleProblem(turns);
  if (roles) return fail('bad-roles', roles);
  const empty = turns.findIndex((t) => t.value.trim() === '');
  if (empty !== -1) return fail('empty-turn', `turn ${empty} is empty`);
  const tokens = turns.reduce((n, t) => n + countImageTokens(t.value), 0);
  if (tokens !== record.images.length) {
    return fail('image-token-mismatch', `${tokens} <image> tokens for ${record.images.length} images`);
  }
  return undefined;
}
