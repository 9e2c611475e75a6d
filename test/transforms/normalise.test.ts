import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { QuarantineRecord } from '../../core/quarantine.ts';
import type { RawRecord, RawTurn } from '../../core/schema.ts';
import {
  countImageTokens,
  type NormalisedRecord,
  normaliseRecord,
  normaliseRole,
  normaliseText,
  placeImageTokens,
} from '../../transforms/normalise.ts';

const img = (n: number) => ({ bytes: new Uint8Array([n]) });

function raw(conversations: RawTurn[], images = 1, extra: Partial<RawRecord> = {}): RawRecord {
  return {
    id: 'abc-1',
    source: 'llava-onevision/chartqa',
    origin: 's3://bucket/ov/chartqa/train-00000.parquet#row=4',
    images: Array.from({ length: images }, (_, i) => img(i)),
    conversations,
    meta: { data_source: 'chartqa' },
    ...extra,
  };
}

function kept(r: NormalisedRecord | QuarantineRecord): NormalisedRecord {
  if ('reason' in r) assert.fail(`quarantined: ${r.reason} ${r.message}`);
  return r;
}

describe('normaliseRecord', () => {
  it('prefixes the id with the component, keeps source, origin and images in order', () => {
    const r = kept(
      normaliseRecord(
        raw(
          [
            { from: 'human', value: '<image>\nWhat is the peak?' },
            { from: 'gpt', value: '42' },
          ],
          1,
        ),
        'onevision',
      ),
    );
    assert.equal(r.id, 'onevision/abc-1');
    assert.equal(r.source, 'llava-onevision/chartqa');
    assert.equal(r.origin, 's3://bucket/ov/chartqa/train-00000.parquet#row=4');
    assert.deepEqual(r.images, [img(0)]);
    assert.deepEqual(r.conversations, [
      { from: 'human', value: '<image>\nWhat is the peak?' },
      { from: 'gpt', value: '42' },
    ]);
  });

  it('maps role spellings to human/gpt/system', () => {
    const r = kept(
      normaliseRecord(
        raw([
          { from: 'SYSTEM', value: 'Be brief.' },
          { from: 'USER', value: '<image>\nQ1' },
          { from: 'Assistant', value: 'A1' },
          { from: ' user ', value: 'Q2' },
          { from: 'chatgpt', value: 'A2' },
          { from: 'Human', value: 'Q3' },
          { from: 'GPT', value: 'A3' },
        ]),
        'c',
      ),
    );
    assert.deepEqual(
      r.conversations.map((t) => t.from),
      ['system', 'human', 'gpt', 'human', 'gpt', 'human', 'gpt'],
    );
    assert.equal(normaliseRole('bot'), 'gpt');
    assert.equal(normaliseRole('model'), 'gpt');
    assert.equal(normaliseRole('toString'), undefined, 'not fooled by Object.prototype');
  });

  it('quarantines an unknown role as bad-roles, naming the turn', () => {
    const q = normaliseRecord(
      raw([
        { from: 'human', value: '<image>\nQ' },
        { from: 'narrator', value: 'A' },
      ]),
      'c',
    );
    assert.ok('reason' in q);
    if ('reason' in q) {
      assert.equal(q.reason, 'bad-roles');
      assert.equal(q.stage, 'normalise');
      assert.match(q.message, /conversations\[1\].*'narrator'/);
      assert.equal(q.id, 'c/abc-1');
      assert.equal(q.origin, 's3://bucket/ov/chartqa/train-00000.parquet#row=4');
    }
  });

  it('trims every turn and makes line ends LF', () => {
    const r = kept(
      normaliseRecord(
        raw([
          { from: 'human', value: '  \r\n<image>\r\nWhat does\rit say?\t ' },
          { from: 'gpt', value: '\n\nIt says hello.\n' },
        ]),
        'c',
      ),
    );
    assert.deepEqual(
      r.conversations.map((t) => t.value),
      ['<image>\nWhat does\nit say?', 'It says hello.'],
    );
    assert.equal(normaliseText(' a\r\nb '), 'a\nb');
  });

  it('places tokens on the first human turn, one `<image>\\n` per image, when no turn has one (DocMatix)', () => {
    const r = kept(
      normaliseRecord(
        raw(
          [
            { from: 'user', value: 'What is the invoice total?' },
            { from: 'assistant', value: '$1,250.' },
            { from: 'user', value: 'Who signed it?' },
            { from: 'assistant', value: 'J. Doe.' },
          ],
          3,
        ),
        'docmatix',
      ),
    );
    assert.equal(r.conversations[0].value, '<image>\n<image>\n<image>\nWhat is the invoice total?');
    assert.equal(r.conversations[2].value, 'Who signed it?');
    assert.equal(
      r.conversations.reduce((n, t) => n + countImageTokens(t.value), 0),
      3,
    );
  });

  it('places tokens after a leading system turn', () => {
    const r = kept(
      normaliseRecord(
        raw([
          { from: 'system', value: 'You are helpful.' },
          { from: 'human', value: 'Describe it.' },
          { from: 'gpt', value: 'A cat.' },
        ]),
        'c',
      ),
    );
    assert.deepEqual(
      r.conversations.map((t) => t.value),
      ['You are helpful.', '<image>\nDescribe it.', 'A cat.'],
    );
  });

  it('leaves existing tokens where the source put them (start or end of a turn)', () => {
    const r = kept(
      normaliseRecord(
        raw([
          { from: 'human', value: 'What is this?\n<image>' },
          { from: 'gpt', value: 'A chart.' },
        ]),
        'c',
      ),
    );
    assert.equal(r.conversations[0].value, 'What is this?\n<image>');
  });

  it('does not add tokens to text-only samples, nor fix a wrong count (validation reports it)', () => {
    const textOnly = kept(
      normaliseRecord(
        raw(
          [
            { from: 'human', value: 'Hi' },
            { from: 'gpt', value: 'Hello' },
          ],
          0,
        ),
        'c',
      ),
    );
    assert.equal(textOnly.conversations[0].value, 'Hi');
    const twoForOne = kept(
      normaliseRecord(
        raw([
          { from: 'human', value: '<image>\n<image>\nCompare.' },
          { from: 'gpt', value: 'Same.' },
        ]),
        'c',
      ),
    );
    assert.equal(twoForOne.conversations[0].value, '<image>\n<image>\nCompare.');
  });

  it('an image-only human turn gets just the tokens', () => {
    assert.deepEqual(
      placeImageTokens(
        [
          { from: 'human', value: '' },
          { from: 'gpt', value: 'x' },
        ],
        2,
      ),
      [
        { from: 'human', value: '<image>\n<image>' },
        { from: 'gpt', value: 'x' },
      ],
    );
  });

  it('quarantines records whose shape is wrong at run time instead of throwing', () => {
    const bad: [Partial<RawRecord> | Record<string, unknown>, string][] = [
      [{ id: '' }, 'missing-field'],
      [{ conversations: 'hello' }, 'wrong-type'],
      [{ conversations: [{ from: 'human', value: 3 }] }, 'wrong-type'],
      [{ conversations: [null] }, 'wrong-type'],
      [{ images: [{ path: 'x.jpg' }] }, 'wrong-type'],
      [{ images: null }, 'wrong-type'],
    ];
    for (const [patch, reason] of bad) {
      const r = { ...raw([{ from: 'human', value: 'x' }]), ...patch } as RawRecord;
      const q = normaliseRecord(r, 'c');
      assert.ok('reason' in q, JSON.stringify(patch));
      if ('reason' in q) assert.equal(q.reason, reason, JSON.stringify(patch));
    }
  });
});

describe('countImageTokens', () => {
  it('counts non-overlapping `<image>` tokens only', () => {
    assert.equal(countImageTokens(''), 0);
    assert.equal(countImageTokens('<image>'), 1);
    assert.equal(countImageTokens('<image><image>\n<image>'), 3);
    assert.equal(countImageTokens('<imag> <Image> < image>'), 0);
  });
});
