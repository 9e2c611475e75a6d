// Padding waste of right-padded batches (train-bridge/text collate) in a random order against the
// group_by_modality_length order, on a synthetic FastVLM-like mix: the measurement behind "padding, not packing".
//   npx tsx bench/text-batches.ts [--samples 4096] [--micro-batch 8] [--accumulation 16] [--resolution 1024]
import { parseArgs } from 'node:util';
import { keyedHash64 } from '../core/keyed-hash.ts';
import {
  type ConversationTurn,
  collate,
  groupByModalityLength,
  layoutSequence,
  loadQwen2Tokenizer,
  modalityLength,
  tokenizeConversation,
  tokensPerImageAt,
} from '../train-bridge/text/index.ts';
import { placeImageToken, TRIPLET_QUESTIONS } from '../transforms/triplet.ts';

const { values: args } = parseArgs({
  options: {
    samples: { type: 'string', default: '4096' },
    'micro-batch': { type: 'string', default: '8' },
    accumulation: { type: 'string', default: '16' },
    resolution: { type: 'string', default: '1024' },
  },
});
const N = Number(args.samples);
const MICRO = Number(args['micro-batch']);
const ACCUMULATION = Number(args.accumulation);
const PER_IMAGE = tokensPerImageAt(Number(args.resolution));
const MAX_LENGTH = 2048;

const WORDS =
  'the a red bus street wet woman umbrella walking past shop window neon signs night two dogs grassy field cloudy sky trees people'.split(
    ' ',
  );
const u = (i: number, what: string) => Number(keyedHash64(0, what, String(i)) % 1000n) / 1000;
const sentence = (i: number, what: string, words: number) =>
  Array.from(
    { length: words },
    (_, k) => WORDS[Number(keyedHash64(i, what, String(k)) % BigInt(WORDS.length))],
  ).join(' ');

/** 50% Stage-1.5 triplets (dense captions), 35% multi-turn instruction samples with an image, 15% text-only. */
function sample(i: number): { turns: ConversationTurn[]; image: boolean } {
  const kind = u(i, 'kind');
  if (kind < 0.5)
    return {
      image: true,
      turns: [
        { from: 'human', value: placeImageToken(TRIPLET_QUESTIONS[i % 300], u(i, 'place') < 0.5) },
        { from: 'gpt', value: `${sentence(i, 'caption', 40 + Math.floor(u(i, 'len') * 160))}.` },
      ],
    };
  const rounds = 1 + Math.floor(u(i, 'rounds') * 6);
  const image = kind < 0.85;
  const turns: ConversationTurn[] = [];
  for (let r = 0; r < rounds; r++) {
    const q = `${sentence(i, `q${r}`, 5 + Math.floor(u(i + r, 'qlen') * 15))}?`;
    turns.push({ from: 'human', value: r === 0 && image ? `<image>\n${q}` : q });
    turns.push({
      from: 'gpt',
      value: `${sentence(i, `a${r}`, 3 + Math.floor(u(i + r, 'alen') * (image ? 40 : 200)))}.`,
    });
  }
  return { image, turns };
}

const tok = await loadQwen2Tokenizer();
const samples = Array.from({ length: N }, (_, i) => sample(i));
const layouts = samples.map((s) =>
  layoutSequence(
    tokenizeConversation(s.turns, tok, { imageTokenPosition: 'data', maxLength: MAX_LENGTH }),
    PER_IMAGE,
    MAX_LENGTH,
  ),
);

function waste(order: number[]): { waste: number; meanSeqLen: number } {
  let real = 0;
  let padded = 0;
  let seqLens = 0;
  let batches = 0;
  for (let i = 0; i + MICRO <= order.length; i += MICRO) {
    const batch = collate(
      order.slice(i, i + MICRO).map((k) => layouts[k]),
      tok.padId,
    );
    real += batch.attentionMask.reduce((a, b) => a + b, 0);
    padded += batch.batch * batch.seqLen;
    seqLens += batch.seqLen;
    batches++;
  }
  return { waste: 1 - real / padded, meanSeqLen: seqLens / batches };
}

const random = samples
  .map((_, i) => i)
  .sort((a, b) =>
    keyedHash64(17, 'bench-order', String(a)) < keyedHash64(17, 'bench-order', String(b)) ? -1 : 1,
  );
const grouped = groupByModalityLength(
  samples.map((s, i) => ({ id: String(i), modalityLength: modalityLength(s.turns, s.image) })),
  { batchSize: MICRO, worldSize: ACCUMULATION, seed: 17, epoch: 0 },
);
const a = waste(random);
const b = waste(grouped);
const meanLength = layouts.reduce((n, l) => n + l.length, 0) / layouts.length;
console.log(
  `${N} samples, ${PER_IMAGE} tokens per image, mean length ${meanLength.toFixed(0)}, micro-batch ${MICRO}`,
);
console.log(
  `random order:             padding ${(a.waste * 100).toFixed(1)}% of positions, mean seqLen ${a.meanSeqLen.toFixed(0)}`,
);
console.log(
  `group_by_modality_length: padding ${(b.waste * 100).toFixed(1)}% of positions, mean seqLen ${b.meanSeqLen.toFixed(0)}`,
);
console.log(`positions computed, random / grouped: ${(a.meanSeqLen / b.meanSeqLen).toFixed(2)}x`);
