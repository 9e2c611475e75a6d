// The whole text path (tokenizeConversation → layoutSequence → collate) against an independent Python oracle
// of ml-fastvlm's string-level algorithm (test/helpers/qwen2_preprocess_oracle.py), same tokenizer for both:
// fixed samples plus generated conversations with awkward whitespace, unicode and <image> placements.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type ConversationTurn,
  collate,
  IGNORE_INDEX,
  type ImageTokenPosition,
  layoutSequence,
  loadQwen2Tokenizer,
  type Qwen2Tokenizer,
  tokenizeConversation,
} from '../../../train-bridge/text/index.ts';
import { setUpInBefore } from '../../helpers/hooks.ts';

const ORACLE = new URL('../../helpers/qwen2_preprocess_oracle.py', import.meta.url).pathname;
const hasPython = spawnSync('python3', ['-c', 'import json'], { stdio: 'ignore' }).status === 0;

interface OracleBatch {
  input_ids: number[][];
  labels: number[][];
  attention_mask: number[][];
  position_ids: number[][];
}

/** Runs the oracle, answering its tokenize requests with `tok`. */
function runOracle(
  tok: Qwen2Tokenizer,
  samples: ConversationTurn[][],
  opts: { imageTokenPosition: ImageTokenPosition; maxLength: number; tokensPerImage: number },
): Promise<OracleBatch> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', [ORACLE], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    let result: OracleBatch | undefined;
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      const msg = JSON.parse(line) as { encode?: string; result?: OracleBatch };
      if (msg.encode !== undefined) child.stdin.write(`${JSON.stringify(tok.encode(msg.encode))}\n`);
      else if (msg.result) {
        result = msg.result;
        child.stdin.end();
      }
    });
    child.on('close', (code) =>
      result ? resolve(result) : reject(new Error(`oracle exited ${code}: ${stderr.slice(-2000)}`)),
    );
    child.stdin.write(
      `${JSON.stringify({ samples: samples.map((turns) => ({ turns })), ...opts, padId: tok.padId })}\n`,
    );
  });
}

function ours(
  tok: Qwen2Tokenizer,
  samples: ConversationTurn[][],
  opts: { imageTokenPosition: ImageTokenPosition; maxLength: number; tokensPerImage: number },
): OracleBatch {
  const batch = collate(
    samples.map((turns) =>
      layoutSequence(tokenizeConversation(turns, tok, opts), opts.tokensPerImage, opts.maxLength),
    ),
    tok.padId,
  );
  const rows = <T extends ArrayLike<number>>(x: T) =>
    Array.from({ length: batch.batch }, (_, b) =>
      Array.from(x).slice(b * batch.seqLen, (b + 1) * batch.seqLen),
    );
  return {
    input_ids: rows(batch.tokenIds),
    labels: rows(batch.labels),
    attention_mask: rows(batch.attentionMask),
    position_ids: rows(batch.positionIds),
  };
}

const FIXED: ConversationTurn[][] = [
  [
    { from: 'human', value: '<image>\nDescribe the contents of this photo.' },
    { from: 'gpt', value: 'A red bus on a wet street.' },
  ],
  [
    { from: 'human', value: 'Describe the main subject of this photo.\n<image>' },
    { from: 'gpt', value: 'A red bus on a wet street.' },
  ],
  [
    { from: 'human', value: '<image>\nWhat colour is the bus?' },
    { from: 'gpt', value: 'Red.' },
    { from: 'human', value: 'Is it raining?' },
    { from: 'gpt', value: 'Yes, the street is wet.' },
  ],
  [
    { from: 'human', value: 'Name a prime number.' },
    { from: 'gpt', value: '\n\n7' },
  ],
  [
    { from: 'human', value: 'Image 1: <image>\nImage 2: <image>\nWhich is brighter?' },
    { from: 'gpt', value: 'The second.' },
  ],
  [
    { from: 'system', value: 'Answer in one word.' },
    { from: 'human', value: '<image>\nWhat vehicle is this?' },
    { from: 'gpt', value: 'Bus' },
  ],
];

// Text pieces chosen to stress the pre-tokenizer at turn boundaries: leading/trailing newlines and spaces,
// digits, CJK, emoji, punctuation runs.
const piece = fc.constantFrom(
  'a',
  ' b',
  'Hello',
  '\n',
  '\n\n',
  ' ',
  '  ',
  '7',
  '12',
  '，',
  '世界',
  '🤗',
  '...',
  "'s",
  '\t',
  'x\n',
);
const text = fc.array(piece, { minLength: 1, maxLength: 8 }).map((p) => p.join(''));
const withImage = fc
  .tuple(text, fc.constantFrom('before', 'after', 'middle'))
  .map(([t, where]) =>
    where === 'before' ? `<image>\n${t}` : where === 'after' ? `${t}\n<image>` : `${t} <image> ${t}`,
  );
const conversation = fc
  .tuple(fc.boolean(), fc.integer({ min: 1, max: 3 }), fc.boolean())
  .chain(([system, rounds, image]) =>
    fc.tuple(
      system ? text : fc.constant(undefined),
      fc.array(fc.tuple(text, text), { minLength: rounds, maxLength: rounds }),
      image ? withImage : fc.constant(undefined),
    ),
  )
  .map(([system, rounds, imageTurn]): ConversationTurn[] => [
    ...(system !== undefined ? [{ from: 'system', value: system }] : []),
    ...rounds.flatMap(([h, g], i) => [
      { from: 'human', value: i === 0 && imageTurn !== undefined ? imageTurn : h },
      { from: 'gpt', value: g },
    ]),
  ]);

describe('text path vs the Python oracle of preprocess_qwen_2', {
  skip: hasPython ? false : 'no python3',
}, () => {
  let loaded: Qwen2Tokenizer | undefined;
  before(async () => {
    loaded = await loadQwen2Tokenizer();
  });
  const tok = () => setUpInBefore(loaded, 'tokenizer');

  for (const imageTokenPosition of ['data', 'front'] as const) {
    it(`fixed samples, ${imageTokenPosition}, long enough for everything`, async () => {
      const opts = { imageTokenPosition, maxLength: 4096, tokensPerImage: 4 };
      assert.deepEqual(ours(tok(), FIXED, opts), await runOracle(tok(), FIXED, opts));
    });
  }

  it('fixed samples cut by both truncations (before and after the splice)', async () => {
    for (const maxLength of [20, 30, 36, 45]) {
      const opts = { imageTokenPosition: 'data' as const, maxLength, tokensPerImage: 8 };
      assert.deepEqual(
        ours(tok(), FIXED, opts),
        await runOracle(tok(), FIXED, opts),
        `maxLength ${maxLength}`,
      );
    }
  });

  it('generated conversations (whitespace, unicode, image placements), data and front', async () => {
    const samples = fc.sample(conversation, { seed: 13, numRuns: 48 });
    for (const imageTokenPosition of ['data', 'front'] as const) {
      const opts = { imageTokenPosition, maxLength: 4096, tokensPerImage: 2 };
      assert.deepEqual(ours(tok(), samples, opts), await runOracle(tok(), samples, opts));
    }
  });

  it('departs on purpose for a conversation ending on a human turn: we keep the earlier replies', async () => {
    const turns = [...FIXED[2], { from: 'human', value: 'And now?' }];
    const opts = { imageTokenPosition: 'data' as const, maxLength: 4096, tokensPerImage: 2 };
    const reference = await runOracle(tok(), [turns], opts);
    const mine = ours(tok(), [turns], opts);
    assert.deepEqual(mine.input_ids, reference.input_ids);
    // The reference's length check fails (the last round has no reply) and it ignores every label.
    assert.ok(reference.labels[0].every((l) => l === IGNORE_INDEX));
    assert.ok(mine.labels[0].some((l) => l !== IGNORE_INDEX));
  });
});
