// Python's notion of whitespace (str.isspace), which the reference's strip() and split() use: it differs from
// JavaScript's trim() at \x1c-\x1f, \x85 (Python only) and \ufeff (JavaScript only).
const PY_SPACE_CLASS =
  '[\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const STRIP = new RegExp(`^${PY_SPACE_CLASS}+|${PY_SPACE_CLASS}+$`, 'gu');
const RUN = new RegExp(`${PY_SPACE_CLASS}+`, 'u');

/** Python's `s.strip()`. */
export function pythonStrip(s: string): string {
  return s.replace(STRIP, '');
}

/** `len(s.split())`: words between runs of whitespace. */
export function pythonWordCount(s: string): number {
  return s.split(RUN).filter((w) => w !== '').length;
}
