// Normalise: a reader's RawRecord → the text side of `mixforge.sample/v1`: LLaVA roles, one `<image>` token per image,
// trimmed turns, component-prefixed id, extra fields as canonical JSON metadata. Pure; failures become quarantine.
import { canonicalJson } from '../core/canonical-json.ts';
import type { QuarantineReason, QuarantineRecord } from '../core/quarantine.ts';
import type { RawImage, RawRecord, Role, Sample, Turn } from '../core/schema.ts';

export const IMAGE_TOKEN = '<image>';

/** A sample whose text is normalised; its images are still the source's bytes (image normalisation is next). */
export interface NormalisedRecord {
  id: string;
  source: string;
  origin: string;
  images: RawImage[];
  conversations: Turn[];
  /** The source's extra fields as canonical JSON (`{}` when none): the sample's `metadata` column. */
  metadata: string;
}

/** A finished sample before the build assigns its global-order key. */
export type NormalisedSample = Omit<Sample, 'key' | 'metadata'> & { metadata: string };

/**
 * Role spellings seen across the sources (ShareGPT, OpenAI-style, DocMatix's user/assistant), matched
 * case-insensitively. Anything else is quarantined as `bad-roles` rather than guessed.
 */
const ROLE_ALIASES: Readonly<Record<string, Role>> = {
  human: 'human',
  user: 'human',
  gpt: 'gpt',
  assistant: 'gpt',
  bot: 'gpt',
  chatgpt: 'gpt',
  model: 'gpt',
  system: 'system',
};

export function normaliseRole(from: string): Role | undefined {
  return Object.hasOwn(ROLE_ALIASES, from.trim().toLowerCase())
    ? ROLE_ALIASES[from.trim().toLowerCase()]
    : undefined;
}

export function countImageTokens(text: string): number {
  let n = 0;
  for (let i = text.indexOf(IMAGE_TOKEN); i !== -1; i = text.indexOf(IMAGE_TOKEN, i + IMAGE_TOKEN.length))
    n++;
  return n;
}

/** Trimmed, with CRLF/CR line ends made LF so the same text from Windows-written sources hashes the same. */
export function normaliseText(text: string): string {
  return text.replace(/\r\n?/g, '\n').trim();
}

/**
 * Puts `n` image tokens at the start of the first human turn, one `<image>\n` per image (the LLaVA-OneVision
 * convention for multi-image samples). Used only when no turn carries a token (DocMatix, any such source).
 * Returns the turns unchanged when there is no human turn; validation then reports the roles.
 */
export function placeImageTokens(turns: Turn[], n: number): Turn[] {
  const first = turns.findIndex((t) => t.from === 'human');
  if (n === 0 || first === -1) return turns;
  const tokens = Array.from({ length: n }, () => IMAGE_TOKEN).join('\n');
  return turns.map((t, i) =>
    i === first ? { from: t.from, value: t.value ? `${tokens}\n${t.value}` : tokens } : t,
  );
}

function quarantine(
  raw: RawRecord,
  reason: QuarantineReason,
  message: string,
  id?: string,
): QuarantineRecord {
  return {
    origin: String(raw.origin),
    source: String(raw.source),
    stage: 'normalise',
    reason,
    message,
    ...(id !== undefined ? { id } : {}),
  };
}

/**
 * RawRecord → NormalisedRecord. `component` prefixes the id (`<component>/<source id>`). Records whose shape is
 * wrong at run time (readers are trusted to type-check, but this is the last gate before the output) are
 * quarantined too, so this function never throws on any input.
 */
export function normaliseRecord(raw: RawRecord, component: string): NormalisedRecord | QuarantineRecord {
  if (typeof raw.id !== 'string' || raw.id === '')
    return quarantine(raw, 'missing-field', 'record has no id');
  const id = `${component}/${raw.id}`;
  if (!Array.isArray(raw.images) || raw.images.some((im) => !(im?.bytes instanceof Uint8Array))) {
    return quarantine(raw, 'wrong-type', 'images must be a list of {bytes}', id);
  }
  if (!Array.isArray(raw.conversations)) {
    return quarantine(raw, 'wrong-type', 'conversations must be a list of {from, value}', id);
  }
  const turns: Turn[] = [];
  for (const [i, t] of raw.conversations.entries()) {
    if (typeof t?.from !== 'string' || typeof t?.value !== 'string') {
      return quarantine(raw, 'wrong-type', `conversations[${i}] must have string from and value`, id);
    }
    const from = normaliseRole(t.from);
    if (!from) return quarantine(raw, 'bad-roles', `conversations[${i}] has unknown role '${t.from}'`, id);
    turns.push({ from, value: normaliseText(t.value) });
  }
  const tokens = turns.reduce((n, t) => n + countImageTokens(t.value), 0);
  const conversations = tokens === 0 ? placeImageTokens(turns, raw.images.length) : turns;
  let metadata: string;
  try {
    metadata = canonicalJson(raw.meta ?? {});
  } catch (err) {
    return quarantine(raw, 'wrong-type', `metadata has no JSON form: ${(err as Error).message}`, id);
  }
  return { id, source: raw.source, origin: raw.origin, images: raw.images, conversations, metadata };
}
