// Checks an image path taken from an untrusted annotation file before anything is read: it must be a plain
// relative path that cannot leave its image root (no `..`, not absolute, no URI scheme, no NUL or backslash).

export type SafePathCheck = { safe: true; path: string } | { safe: false; message: string };

/**
 * The canonical relative form of `raw` (`./a//b.jpg` → `a/b.jpg`), or why it is unsafe. `..` segments are
 * rejected outright rather than resolved: on S3 and in archives `a/../b` is a literal key, not `b`, and no
 * real dataset needs them. Symlinks are checked separately by the local folder root (realpath).
 */
export function checkImagePath(raw: string): SafePathCheck {
  if (raw.length === 0) return { safe: false, message: 'empty image path' };
  if (raw.includes('\0'))
    return { safe: false, message: `image path ${JSON.stringify(raw)} contains a NUL byte` };
  if (raw.includes('\\')) {
    return { safe: false, message: `image path ${JSON.stringify(raw)} contains a backslash` };
  }
  if (raw.startsWith('/')) {
    return { safe: false, message: `image path ${JSON.stringify(raw)} is absolute` };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) || /^[a-z]:\//i.test(raw)) {
    return {
      safe: false,
      message: `image path ${JSON.stringify(raw)} is a URI or drive path, not a relative path`,
    };
  }
  const segments: string[] = [];
  for (const seg of raw.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') return { safe: false, message: `image path ${JSON.stringify(raw)} contains '..'` };
    segments.push(seg);
  }
  if (segments.length === 0)
    return { safe: false, message: `image path ${JSON.stringify(raw)} names no file` };
  return { safe: true, path: segments.join('/') };
}

/** Canonical member name inside an archive (`./a/b.jpg` → `a/b.jpg`); undefined for names we never serve. */
export function canonicalMemberName(name: string): string | undefined {
  const check = checkImagePath(name);
  return check.safe ? check.path : undefined;
}
