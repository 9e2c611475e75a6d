// The record shapes both reader families accept beyond LLaVA's {from, value} turns: OpenAI-style `messages`,
// a system prompt field, and the video/audio records mixforge refuses (`unsupported-modality`) rather than keep.
import type { RawTurn } from '../core/schema.ts';
import { typeName } from '../core/type-name.ts';
import { type Checked, checkString, isPlainObject, reject } from './field-checks.ts';

/** Fields whose non-empty value means the record needs a modality mixforge does not build (video, audio). */
const OTHER_MODALITY_FIELDS = ['video', 'videos', 'audio', 'audios'] as const;
const OTHER_MODALITY_TOKEN = /<(video|audio)>/;

function isEmptyValue(v: unknown): boolean {
  return v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0);
}

/** A `video`/`audio` field (or column) with a value: the record is refused before anything else is checked. */
export function otherModalityField(record: Record<string, unknown>, id: string | undefined): Checked<void> {
  for (const field of OTHER_MODALITY_FIELDS) {
    if (!isEmptyValue(record[field])) {
      return reject(
        'unsupported-modality',
        `field '${field}' is set: ${field.startsWith('video') ? 'video' : 'audio'} records are not built (image and text only)`,
        id,
      );
    }
  }
  return { ok: true, value: undefined };
}

/** A `<video>` or `<audio>` token in any turn: the text talks about footage or sound the sample would not carry. */
export function otherModalityToken(turns: readonly RawTurn[], id: string): Checked<void> {
  for (let t = 0; t < turns.length; t++) {
    const m = OTHER_MODALITY_TOKEN.exec(turns[t].value);
    if (m) {
      return reject(
        'unsupported-modality',
        `turn ${t} holds a ${m[0]} token: ${m[1]} records are not built (image and text only)`,
        id,
      );
    }
  }
  return { ok: true, value: undefined };
}

const IMAGE_TOKEN = '<image>';

/**
 * One `content` value: a string, or an OpenAI-style list of parts (`{type: 'text', text}`, `{type: 'image'}` /
 * `image_url`, which becomes an `<image>` token in place; video/audio parts are refused).
 */
function contentText(content: unknown, field: string, id: string): Checked<string> {
  if (typeof content === 'string') return { ok: true, value: content };
  if (content === null || content === undefined)
    return reject('missing-field', `field '${field}' is missing`, id);
  if (!Array.isArray(content)) {
    return reject(
      'wrong-type',
      `field '${field}' must be a string or a list of parts, got ${typeName(content)}`,
      id,
    );
  }
  const pieces: string[] = [];
  for (let k = 0; k < content.length; k++) {
    const part: unknown = content[k];
    const at = `${field}[${k}]`;
    if (!isPlainObject(part))
      return reject('wrong-type', `field '${at}' must be a {type, …} part, got ${typeName(part)}`, id);
    const type = checkString(part.type, `${at}.type`, id);
    if (!type.ok) return type;
    if (type.value === 'text') {
      const text = checkString(part.text, `${at}.text`, id);
      if (!text.ok) return text;
      pieces.push(text.value);
    } else if (type.value === 'image' || type.value === 'image_url') {
      pieces.push(IMAGE_TOKEN);
    } else if (/^(video|audio|input_audio)/.test(type.value)) {
      return reject(
        'unsupported-modality',
        `field '${at}' is a ${type.value} part: only images and text are built`,
        id,
      );
    } else {
      return reject('wrong-type', `field '${at}.type' must be text or image, got '${type.value}'`, id);
    }
  }
  // Parts are adjacent pieces of one message; an image token stands on its own line as in LLaVA data.
  return { ok: true, value: pieces.join('\n') };
}

/**
 * `messages`: a list of `{role, content}` (LLaMA-Factory, OpenAI style). Roles are kept as spelt (user,
 * assistant, system map to LLaVA roles at normalisation); a system message stays where it is (validation accepts
 * it only first).
 */
export function checkMessages(value: unknown, id: string): Checked<RawTurn[]> {
  if (value === null || value === undefined)
    return reject('missing-field', "field 'messages' is missing", id);
  if (!Array.isArray(value))
    return reject('wrong-type', `field 'messages' must be a list, got ${typeName(value)}`, id);
  const turns: RawTurn[] = [];
  for (let t = 0; t < value.length; t++) {
    const message: unknown = value[t];
    if (!isPlainObject(message)) {
      return reject(
        message === null ? 'missing-field' : 'wrong-type',
        `field 'messages[${t}]' must be a {role, content} object, got ${typeName(message)}`,
        id,
      );
    }
    const role = checkString(message.role, `messages[${t}].role`, id);
    if (!role.ok) return role;
    const content = contentText(message.content, `messages[${t}].content`, id);
    if (!content.ok) return content;
    turns.push({ from: role.value, value: content.value });
  }
  return { ok: true, value: turns };
}

/** Record fields that hold a system prompt: lmms-finetune's `system_prompt`, LLaMA-Factory's `system`. */
export const SYSTEM_PROMPT_FIELDS = ['system_prompt', 'system'] as const;

/**
 * A system prompt field (`system_prompt`, lmms-finetune; `system`, LLaMA-Factory) becomes the leading system
 * turn. A record with two of them, or with one and a leading system turn, is refused: which one the trainer
 * should see cannot be guessed.
 */
export function withSystemPrompt(
  turns: RawTurn[],
  record: Record<string, unknown>,
  id: string,
): Checked<RawTurn[]> {
  const set = SYSTEM_PROMPT_FIELDS.filter((f) => record[f] !== null && record[f] !== undefined);
  if (set.length === 0) return { ok: true, value: turns };
  if (set.length > 1)
    return reject('bad-roles', `both '${set[0]}' and '${set[1]}' fields: keep one of them`, id);
  const field = set[0];
  const prompt = record[field];
  if (typeof prompt !== 'string')
    return reject('wrong-type', `field '${field}' must be a string, got ${typeName(prompt)}`, id);
  if (prompt.trim() === '') return { ok: true, value: turns };
  if (turns[0]?.from.trim().toLowerCase() === 'system')
    return reject('bad-roles', `both a '${field}' field and a leading system turn: keep one of them`, id);
  return { ok: true, value: [{ from: 'system', value: prompt }, ...turns] };
}
