// Qwen2 tokenizer speed and agreement: @huggingface/tokenizers (ours) against @lenml/tokenizers on the same
// tokenizer.json and text, same run; plus whole conversations through tokenizeConversation.
//   npx tsx bench/tokenizer.ts [--samples 2000] [--rounds 5]
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { TokenizerLoader } from '@lenml/tokenizers';
import {
  type ConversationTurn,
  loadQwen2Tokenizer,
  shippedTokenizerPath,
  tokenizeConversation,
} from '../train-bridge/text/index.ts';
import { placeImageToken, TRIPLET_QUESTIONS } from '../transforms/triplet.ts';

const { values: args } = parseArgs({
  options: { samples: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '5' } },
});
const SAMPLES = Number(args.samples);
const ROUNDS = Number(args.rounds);

// Caption-like text: words and punctuation of dense captions, a little CJK and digits, drawn deterministically.
const WORDS =
  'a the red bus street wet woman holding umbrella while walking past shop window reflecting neon signs at night ' +
  'two dogs play on grassy field under cloudy sky in the background there is 3 trees and 12 people 世界 你好 café'.split(
    ' ',
  );
function caption(i: number): string {
  const n = 20 + ((i * 7919) % 60);
  const words = Array.from({ length: n }, (_, k) => WORDS[(i * 31 + k * 17 + ((k * k) % 13)) % WORDS.length]);
  return `${words.join(' ').replace(/^./, (c) => c.toUpperCase())}.`;
}
const conversations: ConversationTurn[][] = Array.from({ length: SAMPLES }, (_, i) => [
  { from: 'human', value: placeImageToken(TRIPLET_QUESTIONS[i % 300], i % 2 === 0) },
  { from: 'gpt', value: caption(i) },
]);
const texts = conversations.map((c) => `${c[0].value.replace('<image>', '')}\n${c[1].value}`);

const path = shippedTokenizerPath();
let t0 = performance.now();
const ours = await loadQwen2Tokenizer(path);
const oursLoad = performance.now() - t0;
t0 = performance.now();
const lenml = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(readFileSync(path, 'utf8')),
  tokenizerConfig: JSON.parse(readFileSync(join(dirname(path), 'tokenizer_config.json'), 'utf8')),
});
const lenmlLoad = performance.now() - t0;
const lenmlEncode = (s: string): number[] => lenml.encode(s, { add_special_tokens: false });

let disagreements = 0;
let tokens = 0;
for (const s of texts) {
  const a = ours.encode(s);
  tokens += a.length;
  if (a.join() !== lenmlEncode(s).join()) disagreements++;
}

/** Median seconds of `rounds` passes over all texts (a warm-up pass first). */
function time(encode: (s: string) => number[]): number {
  for (const s of texts) encode(s);
  const runs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = performance.now();
    for (const s of texts) encode(s);
    runs.push((performance.now() - start) / 1000);
  }
  return runs.sort((a, b) => a - b)[Math.floor(runs.length / 2)];
}
// Interleaved so machine load hits both alike.
const oursS = time((s) => ours.encode(s));
const lenmlS = time(lenmlEncode);
// One long document (the README-sized case): the pre-tokenizer and BPE cache behave differently than on captions.
const longDoc = texts.slice(0, 200).join('\n');
const longTimes = [(s: string) => ours.encode(s), lenmlEncode].map((encode) => {
  encode(longDoc);
  const start = performance.now();
  for (let r = 0; r < ROUNDS; r++) encode(longDoc);
  return (performance.now() - start) / 1000 / ROUNDS;
});
const convOpts = { imageTokenPosition: 'data', maxLength: 4096 } as const;
for (const c of conversations.slice(0, 100)) tokenizeConversation(c, ours, convOpts);
t0 = performance.now();
let convTokens = 0;
for (const c of conversations) convTokens += tokenizeConversation(c, ours, convOpts).ids.length;
const convS = (performance.now() - t0) / 1000;

console.log(
  `texts ${texts.length}, ${tokens} tokens; disagreements @huggingface/tokenizers vs @lenml/tokenizers: ${disagreements}`,
);
console.log(`load: ours ${oursLoad.toFixed(0)} ms, lenml ${lenmlLoad.toFixed(0)} ms`);
console.log(
  `encode: ours ${(tokens / oursS / 1e3).toFixed(0)}k tokens/s, lenml ${(tokens / lenmlS / 1e3).toFixed(0)}k tokens/s`,
);
console.log(`ratio ours/lenml throughput: ${(lenmlS / oursS).toFixed(2)}x`);
console.log(
  `one ${longDoc.length}-character document: ratio ours/lenml throughput ${(longTimes[1] / longTimes[0]).toFixed(2)}x`,
);
console.log(
  `tokenizeConversation (render + labels): ${(conversations.length / convS).toFixed(0)} samples/s, ${(convTokens / convS / 1e3).toFixed(0)}k tokens/s`,
);
