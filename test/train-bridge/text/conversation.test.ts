// Rendering and label masks of conv_qwen_2 / preprocess_qwen_2, token by token, against hand-verified
// expectations (each id below was checked against its decoded piece; comments show the pieces).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import {
  ConversationError,
  type ConversationTurn,
  IGNORE_INDEX,
  IMAGE_TOKEN_INDEX,
  loadQwen2Tokenizer,
  moveImageTokensToFront,
  type Qwen2Tokenizer,
  type TokenizedConversation,
  tokenizeConversation,
} from '../../../train-bridge/text/index.ts';
import type { NormalisedRecord } from '../../../transforms/normalise.ts';
import { imageBeforeQuestion, makeTriplet, tripletQuestion } from '../../../transforms/triplet.ts';
import { setUpInBefore } from '../../helpers/hooks.ts';

const IMG = IMAGE_TOKEN_INDEX;
/** A run of ids whose labels are ignored. */
const ignored = (...ids: number[]) => ids.map((id) => [id, false] as const);
/** A run of ids that are their own labels. */
const learned = (...ids: number[]) => ids.map((id) => [id, true] as const);

// <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n
const DEFAULT_SYSTEM = ignored(151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198);
const USER = ignored(151644, 872, 198); // <|im_start|>user\n
const END_USER = ignored(151645, 198); // <|im_end|>\n
const ASSISTANT = ignored(151644, 77091, 198); // <|im_start|>assistant\n
// "A red bus on a wet street." <|im_end|> \n — the reply, its <|im_end|> and the newline after it are learned.
const CAPTION = 'A red bus on a wet street.';
const CAPTION_LEARNED = learned(32, 2518, 5828, 389, 264, 14401, 8592, 13, 151645, 198);

function assertTokens(t: TokenizedConversation, expected: (readonly [number, boolean])[]): void {
  assert.deepEqual(
    Array.from(t.ids),
    expected.map(([id]) => id),
  );
  assert.deepEqual(
    Array.from(t.labels),
    expected.map(([id, l]) => (l ? id : IGNORE_INDEX)),
  );
}

function tripletRecord(id: string): NormalisedRecord {
  return {
    id,
    source: 'demo',
    origin: 'demo.jsonl:1',
    images: [{ bytes: new Uint8Array([1]) }],
    conversations: [
      { from: 'human', value: '<image>\nWrite a caption.' },
      { from: 'gpt', value: CAPTION },
    ],
    metadata: '{}',
  };
}

function triplet(id: string): ConversationTurn[] {
  const t = makeTriplet(tripletRecord(id), 17);
  assert.ok('conversations' in t, 'makeTriplet quarantined the record');
  return t.conversations;
}

describe('tokenizeConversation (conv_qwen_2, preprocess_qwen_2 labels)', () => {
  let loaded: Qwen2Tokenizer | undefined;
  before(async () => {
    loaded = await loadQwen2Tokenizer();
  });
  const tok = () => setUpInBefore(loaded, 'tokenizer');
  const run = (turns: ConversationTurn[], opts: Partial<Parameters<typeof tokenizeConversation>[2]> = {}) =>
    tokenizeConversation(turns, tok(), { imageTokenPosition: 'data', maxLength: 4096, ...opts });

  it('a Stage-1.5 triplet with <image> before the question', () => {
    // demo/9 under seed 17: before, "Describe the contents of this photo."
    assert.equal(imageBeforeQuestion(17, 'demo/9'), true);
    assert.equal(tripletQuestion(17, 'demo/9'), 'Describe the contents of this photo.');
    assertTokens(run(triplet('demo/9')), [
      ...DEFAULT_SYSTEM,
      ...USER,
      ...ignored(IMG, 198), // <image> \n
      ...ignored(74785, 279, 8794, 315, 419, 6548, 13), // Describe the contents of this photo.
      ...END_USER,
      ...ASSISTANT,
      ...CAPTION_LEARNED,
    ]);
  });

  it('a Stage-1.5 triplet with <image> after the question (data keeps it there)', () => {
    assert.equal(imageBeforeQuestion(17, 'demo/5'), false);
    assert.equal(tripletQuestion(17, 'demo/5'), 'Describe the main subject of this photo.');
    assertTokens(run(triplet('demo/5')), [
      ...DEFAULT_SYSTEM,
      ...USER,
      ...ignored(74785, 279, 1887, 3832, 315, 419, 6548, 624), // Describe the main subject of this photo | .\n
      ...ignored(IMG),
      ...END_USER,
      ...ASSISTANT,
      ...CAPTION_LEARNED,
    ]);
  });

  it('front moves the after-placed <image> to the front of the turn, as preprocess_multimodal does', () => {
    assertTokens(run(triplet('demo/5'), { imageTokenPosition: 'front' }), [
      ...DEFAULT_SYSTEM,
      ...USER,
      ...ignored(IMG, 198), // <image> \n
      ...ignored(74785, 279, 1887, 3832, 315, 419, 6548, 13), // Describe the main subject of this photo.
      ...END_USER,
      ...ASSISTANT,
      ...CAPTION_LEARNED,
    ]);
    // The before-placed triplet is unchanged by front.
    assert.deepEqual(run(triplet('demo/9'), { imageTokenPosition: 'front' }), run(triplet('demo/9')));
  });

  it('a multi-turn sample learns every assistant reply and nothing of the user turns', () => {
    const t = run([
      { from: 'human', value: '<image>\nWhat colour is the bus?' },
      { from: 'gpt', value: 'Red.' },
      { from: 'human', value: 'Is it raining?' },
      { from: 'gpt', value: 'Yes, the street is wet.' },
    ]);
    assertTokens(t, [
      ...DEFAULT_SYSTEM,
      ...USER,
      ...ignored(IMG, 198, 3838, 12463, 374, 279, 5828, 30), // <image> \n What colour is the bus?
      ...END_USER,
      ...ASSISTANT,
      ...learned(6033, 13, 151645, 198), // Red. <|im_end|> \n
      ...USER,
      ...ignored(3872, 432, 83253, 30), // Is it raining?
      ...END_USER,
      ...ASSISTANT,
      ...learned(9454, 11, 279, 8592, 374, 14401, 13, 151645, 198), // Yes, the street is wet. <|im_end|> \n
    ]);
  });

  it('a text-only sample; a reply starting with newlines merges with the header newline and is learned', () => {
    // "assistant\n\n\n7": the pre-tokenizer makes "\n\n\n" one token, so the common prefix with
    // tokenize("assistant\n") ends after "assistant" — the reference's instruction_len does the same.
    assertTokens(
      run([
        { from: 'human', value: 'Name a prime number.' },
        { from: 'gpt', value: '\n\n7' },
      ]),
      [
        ...DEFAULT_SYSTEM,
        ...USER,
        ...ignored(675, 264, 10250, 1372, 13), // Name a prime number.
        ...END_USER,
        ...ignored(151644, 77091), // <|im_start|>assistant
        ...learned(1406, 22, 151645, 198), // \n\n\n 7 <|im_end|> \n
      ],
    );
  });

  it('a two-image sample keeps one placeholder per <image>, where each stands', () => {
    assertTokens(
      run([
        { from: 'human', value: 'Image 1: <image>\nImage 2: <image>\nWhich is brighter?' },
        { from: 'gpt', value: 'The second.' },
      ]),
      [
        ...DEFAULT_SYSTEM,
        ...USER,
        ...ignored(1906, 220, 16, 25, 220, IMG, 198), // Image 1: | space | <image> \n
        ...ignored(1906, 220, 17, 25, 220, IMG, 198), // Image 2: | space | <image> \n
        ...ignored(23085, 374, 52557, 30), // Which is brighter?
        ...END_USER,
        ...ASSISTANT,
        ...learned(785, 2086, 13, 151645, 198), // The second. <|im_end|> \n
      ],
    );
  });

  it("a sample's own system turn replaces the default system message", () => {
    assertTokens(
      run([
        { from: 'system', value: 'Answer in one word.' },
        { from: 'human', value: '<image>\nWhat vehicle is this?' },
        { from: 'gpt', value: 'Bus' },
      ]),
      [
        ...ignored(151644, 8948, 198, 16141, 304, 825, 3409, 13, 151645, 198), // system: Answer in one word.
        ...USER,
        ...ignored(IMG, 198, 3838, 7310, 374, 419, 30), // <image> \n What vehicle is this?
        ...END_USER,
        ...ASSISTANT,
        ...learned(15073, 151645, 198), // Bus <|im_end|> \n
      ],
    );
  });

  it('systemMessage replaces the default for samples without a system turn', () => {
    const t = run(
      [
        { from: 'human', value: 'Hi' },
        { from: 'gpt', value: 'Bus' },
      ],
      { systemMessage: 'Answer in one word.' },
    );
    assert.deepEqual(
      Array.from(t.ids.subarray(0, 10)),
      [151644, 8948, 198, 16141, 304, 825, 3409, 13, 151645, 198],
    );
  });

  it('truncates ids and labels at maxLength, counting an <image> as one id', () => {
    const full = run(triplet('demo/9'));
    const cut = run(triplet('demo/9'), { maxLength: 33 });
    assert.equal(full.ids.length, 38);
    assert.deepEqual(Array.from(cut.ids), Array.from(full.ids.subarray(0, 33)));
    assert.deepEqual(Array.from(cut.labels), Array.from(full.labels.subarray(0, 33)));
    // The cut falls inside the caption: its first 5 tokens are still learned.
    assert.deepEqual(Array.from(cut.labels.subarray(28)), [32, 2518, 5828, 389, 264]);
  });

  it('drops a leading gpt turn, as the reference does', () => {
    const turns = triplet('demo/9');
    assert.deepEqual(run([{ from: 'gpt', value: 'Hello.' }, ...turns]), run(turns));
  });

  it('rejects turns that do not alternate, empty turns, a system turn after the start, and no human turn', () => {
    const bad: [ConversationTurn[], RegExp][] = [
      [
        [
          { from: 'human', value: 'a' },
          { from: 'human', value: 'b' },
        ],
        /turn 1: expected a gpt turn, got "human"/,
      ],
      [
        [
          { from: 'human', value: 'a' },
          { from: 'gpt', value: '' },
        ],
        /turn 1: empty gpt turn/,
      ],
      [
        [
          { from: 'human', value: 'a' },
          { from: 'system', value: 'b' },
        ],
        /turn 1: expected a gpt turn, got "system"/,
      ],
      [[{ from: 'system', value: 'a' }], /turn 1: no human turn/],
      [
        [
          { from: 'user', value: 'a' },
          { from: 'gpt', value: 'b' },
        ],
        /turn 0: expected a human turn, got "user"/,
      ],
    ];
    for (const [turns, message] of bad)
      assert.throws(
        () => run(turns),
        (e: unknown) => e instanceof ConversationError && message.test(e.message),
      );
    assert.throws(() => run(triplet('demo/9'), { maxLength: 0 }), RangeError);
  });
});

describe('moveImageTokensToFront (preprocess_multimodal)', () => {
  it('moves <image> to the front, strips the rest as Python does, and keeps one token per image', () => {
    assert.equal(moveImageTokensToFront('Describe this.\n<image>'), '<image>\nDescribe this.');
    assert.equal(moveImageTokensToFront('<image>'), '<image>');
    assert.equal(moveImageTokensToFront('  A <image> and <image> \x1c'), '<image>\n<image>\nA  and');
    assert.equal(moveImageTokensToFront('no image'), 'no image');
  });
});
