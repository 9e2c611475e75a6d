// Canonical JSON and its hash: the same value always gives the same text (and digest), whatever order its keys
// were written in. Spec hashes, build ids, manifests and shard metadata rely on it for byte-identical builds.
import { createHash } from 'node:crypto';

/**
 * JSON with object keys sorted at every level and no whitespace. Throws on values JSON cannot represent
 * exactly (non-finite numbers, bigints, functions).
 */
export function canonicalJson(x: unknown): string {
  if (x === null || typeof x === 'boolean' || typeof x === 'string') return JSON.stringify(x);
  if (typeof x === 'number') {
    if (!Number.isFinite(x)) throw new TypeError(`canonicalJson: ${x} has no JSON form`);
    return JSON.stringify(x);
  }
  if (Array.isArray(x)) return `[${x.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (typeof x === 'object') {
    const entries = Object.entries(x as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new TypeError(`canonicalJson: a ${typeof x} has no JSON form`);
}

/** sha256 (hex) of a string or bytes. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256 (hex) of a value's canonical JSON. */
export function canonicalHash(x: unknown): string {
  return sha256Hex(canonicalJson(x));
}
