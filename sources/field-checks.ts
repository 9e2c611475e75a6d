// Field checks both reader families share (JSON records and parquet rows decode to the same JS values): ids,
// LLaVA conversations, optional strings. A failed check carries the quarantine reason and a message naming the field.
import type { QuarantineReason } from '../core/quarantine.ts';
import type { RawTurn } from '../core/schema.ts';
import { typeName } from '../core/type-name.ts';

/** A check's outcome: the value, or why the record is rejected (with its id when it is known). */
export type Checked<T> = { ok: true; value: T } | Rejection;

export interface Rejection {
  ok: false;
  reason: QuarantineReason;
  message: string;
  id?: string;
}

export function reject(reason: QuarantineReason, message: string, id?: string): Rejection {
  return id === undefined ? { ok: false, reason, message } : { ok: false, reason, message, id };
}

/** A JSON object or a parquet struct (not a list, not binary). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * Ids are strings in most releases; numeric ids (the 665K file, some parquet re-exports) are kept as their
 * decimal text. `hint` is added to the missing-id message (e.g. how to derive ids instead).
 */
export function checkId(value: unknown, hint = ''): Checked<string> {
  if (value === null || value === undefined || value === '')
    return reject('missing-field', `field 'id' is missing${hint}`);
  if (typeof value === 'string') return { ok: true, value };
  if (typeof value === 'bigint' || (typeof value === 'number' && Number.isFinite(value)))
    return { ok: true, value: String(value) };
  return reject('wrong-type', `field 'id' must be a string or number, got ${typeName(value)}`);
}

/** LLaVA `conversations`: a list of {from, value} strings. */
export function checkConversations(value: unknown, id: string, field = 'conversations'): Checked<RawTurn[]> {
  if (value === null || value === undefined)
    return reject('missing-field', `field '${field}' is missing`, id);
  if (!Array.isArray(value))
    return reject('wrong-type', `field '${field}' must be a list, got ${typeName(value)}`, id);
  const turns: RawTurn[] = [];
  for (let t = 0; t < value.length; t++) {
    const turn: unknown = value[t];
    if (!isPlainObject(turn)) {
      return reject(
        turn === null ? 'missing-field' : 'wrong-type',
        `field '${field}[${t}]' must be a {from, value} object, got ${typeName(turn)}`,
        id,
      );
    }
    const from = checkString(turn.from, `${field}[${t}].from`, id);
    if (!from.ok) return from;
    const text = checkString(turn.value, `${field}[${t}].value`, id);
    if (!text.ok) return text;
    turns.push({ from: from.value, value: text.value });
  }
  return { ok: true, value: turns };
}

/** A required string field. */
export function checkString(value: unknown, field: string, id: string | undefined): Checked<string> {
  if (value === null || value === undefined)
    return reject('missing-field', `field '${field}' is missing`, id);
  if (typeof value !== 'string')
    return reject('wrong-type', `field '${field}' must be a string, got ${typeName(value)}`, id);
  return { ok: true, value };
}

/** An optional string field (absent or null: undefined). */
export function checkOptionalString(value: unknown, field: string, id: string): Checked<string | undefined> {
  if (value === null || value === undefined) return { ok: true, value: undefined };
  return checkString(value, field, id);
}

/** The hint a record without an id gets: ids can be derived from file and position instead. */
export const DERIVE_IDS_HINT = ' (set `ids: derive` on the source to number records by file and position)';

/** `checkId`, with a missing id reported as `missing-id` and the hint to derive ids. */
export function checkOwnId(value: unknown): Checked<string> {
  const id = checkId(value);
  if (id.ok || id.reason !== 'missing-field') return id;
  return reject('missing-id', `no \`id\` field${DERIVE_IDS_HINT}`);
}
