// Renders a conversation as ml-fastvlm's `preprocess_qwen_2` with `conv_qwen_2` does and builds its labels:
// ChatML turns, IMAGE_TOKEN_INDEX at each `<image>`, labels only on the assistant replies. docs/training.md.
import { DEFAULT_SYSTEM_MESSAGE, IGNORE_INDEX, IMAGE_TOKEN, IMAGE_TOKEN_INDEX } from './constants.ts';
import { pythonStrip } from './python-whitespace.ts';
import type { Qwen2Tokenizer } from './tokenizer.ts';

export interface ConversationTurn {
  from: string;
  value: string;
}

export interface TokenizedConversation {
  /** Token ids; IMAGE_TOKEN_INDEX at each `<image>` (one id per image, before splicing). */
  ids: Int32Array;
  /** Same length as ids; IGNORE_INDEX outside the assistant replies. */
  labels: Int32Array;
}

/** `data` keeps `<image>` where the sample put it (the paper's random before/after); `front` moves it as the reference does. */
export type ImageTokenPosition = 'data' | 'front';

export interface TokenizeOptions {
  imageTokenPosition: ImageTokenPosition;
  /** `model_max_length`: ids and labels are cut here, counting each `<image>` as one id (as the reference's collator does). */
  maxLength: number;
  /** System message for samples without their own system turn (default `conv_qwen_2`'s). */
  systemMessage?: string;
}

export class ConversationError extends Error {
  constructor(
    readonly turn: number,
    message: string,
  ) {
    super(`turn ${turn}: ${message}`);
    this.name = 'ConversationError';
  }
}

function countImageTokens(text: string): number {
  return text.split(IMAGE_TOKEN).length - 1;
}

/**
 * The reference's `preprocess_multimodal`: takes `<image>` out of the turn, strips it and puts it in front,
 * `<image>\n…`. The reference collapses several `<image>` of one turn into one; we keep one per image, so the
 * image count still matches the sample's images.
 */
export function moveImageTokensToFront(value: string): string {
  const n = countImageTokens(value);
  if (n === 0) return value;
  const rest = pythonStrip(value.split(IMAGE_TOKEN).join(''));
  return pythonStrip(`${`${IMAGE_TOKEN}\n`.repeat(n)}${rest}`);
}

/** `tokenizer_image_token`: text split at `<image>`, each piece tokenized alone, IMAGE_TOKEN_INDEX between. */
function encodeWithImages(text: string, tok: Qwen2Tokenizer): number[] {
  const out: number[] = [];
  text.split(IMAGE_TOKEN).forEach((chunk, i) => {
    if (i > 0) out.push(IMAGE_TOKEN_INDEX);
    if (chunk !== '') for (const id of tok.encode(chunk)) out.push(id);
  });
  return out;
}

/**
 * Checks roles and returns the system message and the human/gpt turns, as the reference reads them: a leading
 * gpt turn is dropped, then turns must alternate human, gpt. A leading `system` turn (our extension: the
 * reference has no such role) replaces the default system message.
 */
function splitTurns(
  turns: readonly ConversationTurn[],
  systemMessage: string,
): { system: string; dialogue: { turn: number; from: 'human' | 'gpt'; value: string }[] } {
  let system = systemMessage;
  let start = 0;
  if (turns.length > 0 && turns[0].from === 'system') {
    system = turns[0].value;
    start = 1;
  }
  if (start < turns.length && turns[start].from === 'gpt') start += 1; // "Skip the first one if it is not from human"
  const dialogue: { turn: number; from: 'human' | 'gpt'; value: string }[] = [];
  for (let i = start; i < turns.length; i++) {
    const { from, value } = turns[i];
    const expected = (i - start) % 2 === 0 ? 'human' : 'gpt';
    if (from !== expected)
      throw new ConversationError(
        i,
        `expected a ${expected} turn, got "${from}" (turns must alternate human, gpt)`,
      );
    // conv_qwen_2's get_prompt drops the separator after an empty message, which would garble the template.
    if (value === '') throw new ConversationError(i, `empty ${from} turn`);
    dialogue.push({ turn: i, from, value });
  }
  if (dialogue.length === 0) throw new ConversationError(start, 'no human turn');
  return { system, dialogue };
}

const templateCache = new WeakMap<Qwen2Tokenizer, { newline: number[]; assistantHeader: number[] }>();
/** Ids of the template's fixed pieces, tokenized once per tokenizer. */
function templateIds(tok: Qwen2Tokenizer): { newline: number[]; assistantHeader: number[] } {
  let ids = templateCache.get(tok);
  if (!ids) {
    ids = { newline: tok.encode('\n'), assistantHeader: tok.encode('assistant\n') };
    templateCache.set(tok, ids);
  }
  return ids;
}

/**
 * Tokenizes `turns` in `conv_qwen_2`'s rendering,
 *   <|im_start|>system\n{system}<|im_end|>\n
 *   <|im_start|>user\n{human}<|im_end|>\n<|im_start|>assistant\n{gpt}<|im_end|>\n   (per round)
 * with labels as `preprocess_qwen_2` sets them: each assistant reply, its `<|im_end|>` and the `\n` after it
 * are learned; everything else (system, user turns, the `<|im_start|>assistant\n` header, images) is IGNORE_INDEX.
 * Pieces between special tokens are tokenized whole, so the ids equal tokenizing the rendered string; the
 * header/reply boundary is the longest common prefix of tokenize("assistant\n" + reply) and
 * tokenize("assistant\n"), as the reference computes `instruction_len`.
 */
export function tokenizeConversation(
  turns: readonly ConversationTurn[],
  tok: Qwen2Tokenizer,
  opts: TokenizeOptions,
): TokenizedConversation {
  if (!Number.isInteger(opts.maxLength) || opts.maxLength <= 0)
    throw new RangeError(`maxLength must be a positive integer, got ${opts.maxLength}`);
  const { system, dialogue } = splitTurns(turns, opts.systemMessage ?? DEFAULT_SYSTEM_MESSAGE);
  const move = opts.imageTokenPosition === 'front';
  const ids: number[] = [];
  const labels: number[] = [];
  const push = (id: number, learned: boolean) => {
    ids.push(id);
    labels.push(learned && id !== IMAGE_TOKEN_INDEX ? id : IGNORE_INDEX);
  };
  const { newline, assistantHeader } = templateIds(tok);
  const endTurn = (learned: boolean) => {
    push(tok.imEndId, learned);
    for (const id of newline) push(id, learned);
  };

  push(tok.imStartId, false);
  for (const id of encodeWithImages(`system\n${system}`, tok)) push(id, false);
  endTurn(false);
  for (const { from, value } of dialogue) {
    const text = move ? moveImageTokensToFront(value) : value;
    push(tok.imStartId, false);
    if (from === 'human') {
      for (const id of encodeWithImages(`user\n${text}`, tok)) push(id, false);
      endTurn(false);
    } else {
      const reply = encodeWithImages(`assistant\n${text}`, tok);
      let header = 0;
      while (header < assistantHeader.length && reply[header] === assistantHeader[header]) header++;
      for (let i = 0; i < reply.length; i++) push(reply[i], i >= header);
      endTurn(true);
    }
  }
  const length = Math.min(ids.length, opts.maxLength);
  return { ids: Int32Array.from(ids.slice(0, length)), labels: Int32Array.from(labels.slice(0, length)) };
}
