// How a decoded value's type is named in error and quarantine messages: JSON's names plus `bytes` for binary
// values (parquet BYTE_ARRAY, image bytes). One definition for readers, writers and checks.

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (v instanceof Uint8Array) return 'bytes';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}
