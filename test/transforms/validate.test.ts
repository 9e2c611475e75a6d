import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Turn } from '../../core/schema.ts';
import type { NormalisedRecord } from '../../transforms/normalise.ts';
import { isValidText, roleProblem, validateRecord } from '../../transforms/validate.ts';

function record(conversations: Turn[], images = 1): NormalisedRecord {
  return {
    id: 'comp/7',
    source: 'cambrian/coco',
    origin: '/data/cambrian.jsonl#line=8',
    images: Array.from({ length: images }, () => ({ bytes: new Uint8Array([0]) })),
    conversations,
    metadata: '{}',
  };
}

const H = (value: string): Turn => ({ from: 'human', value });
const G = (value: string): Turn => ({ from: 'gpt', value });
const S = (value: string): Turn => ({ from: 'system', value });

describe('validateRecord', () => {
  it('accepts alternating human/gpt turns, with or without a leading system turn', () => {
    assert.equal(validateRecord(record([H('<image>\nQ'), G('A')])), undefined);
    assert.equal(validateRecord(record([S('sys'), H('<image>\nQ'), G('A'), H('Q2'), G('A2')])), undefined);
    assert.equal(validateRecord(record([H('Q'), G('A')], 0)), undefined, 'text-only');
    assert.equal(validateRecord(record([H('<image>\n<image>\nQ'), G('A')], 2)), undefined);
  });

  const cases: [string, NormalisedRecord, string, RegExp][] = [
    ['no turns', record([]), 'no-conversation', /no turns/],
    ['only system', record([S('sys')]), 'bad-roles', /only a system turn/],
    ['starts with gpt', record([G('A'), H('<image>\nQ')]), 'bad-roles', /turn 0 is 'gpt', expected 'human'/],
    [
      'two humans',
      record([H('<image>\nQ'), H('Q'), G('A')]),
      'bad-roles',
      /turn 1 is 'human', expected 'gpt'/,
    ],
    ['system later', record([H('<image>\nQ'), S('sys'), G('A')]), 'bad-roles', /turn 1 is 'system'/],
    ['ends with human', record([H('<image>\nQ'), G('A'), H('Q2')]), 'bad-roles', /ends with a human turn/],
    ['empty gpt turn', record([H('<image>\nQ'), G('')]), 'empty-turn', /turn 1 is empty/],
    ['blank human turn', record([H('   '), G('A')], 0), 'empty-turn', /turn 0 is empty/],
    [
      'token without image',
      record([H('<image>\nQ'), G('A')], 0),
      'image-token-mismatch',
      /1 <image> tokens for 0 images/,
    ],
    [
      'image without token',
      record([H('Q'), G('A')], 1),
      'image-token-mismatch',
      /0 <image> tokens for 1 images/,
    ],
    [
      'token in answer',
      record([H('<image>\nQ'), G('see <image>')], 1),
      'image-token-mismatch',
      /2 <image> tokens/,
    ],
    ['lone surrogate', record([H('<image>\nQ \uD800'), G('A')]), 'invalid-utf8', /turn 0/],
    ['replacement char', record([H('<image>\nQ'), G('caf\uFFFD')]), 'invalid-utf8', /turn 1/],
  ];
  for (const [name, rec, reason, message] of cases) {
    it(`${name} → ${reason}`, () => {
      const q = validateRecord(rec);
      assert.ok(q, 'expected a quarantine record');
      assert.equal(q.reason, reason);
      assert.match(q.message, message);
      assert.equal(q.stage, 'validate');
      assert.deepEqual(
        [q.id, q.source, q.origin],
        ['comp/7', 'cambrian/coco', '/data/cambrian.jsonl#line=8'],
      );
    });
  }
});

describe('helpers', () => {
  it('isValidText accepts any well-formed text, including paired surrogates (emoji)', () => {
    assert.equal(isValidText('naïve — 漢字 😀'), true);
    assert.equal(isValidText('\uDE00x'), false);
    assert.equal(isValidText('x\uD83D'), false);
  });

  it('roleProblem names the first bad turn', () => {
    assert.equal(roleProblem([H('q'), G('a')]), undefined);
    assert.match(roleProblem([H('q'), G('a'), G('b')]) ?? '', /turn 2 is 'gpt', expected 'human'/);
  });
});
