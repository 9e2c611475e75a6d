// Turns a failed file-system call (ENOTDIR, EEXIST, ENOENT, EACCES, …), wherever it surfaced, into a plain sentence
// that names the command-line argument it came from: the last thing the CLI does before printing an error.
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { errorMessage } from '../core/errors.ts';

interface ErrnoFacts {
  code: string;
  syscall?: string;
  path?: string;
}

const ERRNO_CODES = new Set([
  'ENOTDIR',
  'EEXIST',
  'EISDIR',
  'ENOENT',
  'EACCES',
  'EPERM',
  'EROFS',
  'ENOSPC',
  'EMFILE',
  'ENOTEMPTY',
]);

/** Node's own text for such errors, e.g. `ENOTDIR: not a directory, mkdir '/x/afile/_build'`. */
const ERRNO_TEXT = /\b(E[A-Z]{2,}): [^,']*, (\w+) '([^']*)'/;

/**
 * The errno facts of the error or of any error in its cause chain (an errno without a path, as a read of a folder
 * gives, takes the `uri` of the error that wraps it), else of errno text in its message.
 */
function errnoFacts(err: unknown): ErrnoFacts | undefined {
  let wrapperUri: string | undefined;
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 10; depth++) {
    const o = e as { code?: unknown; syscall?: unknown; path?: unknown; uri?: unknown; cause?: unknown };
    if (typeof o.code === 'string' && ERRNO_CODES.has(o.code))
      return {
        code: o.code,
        syscall: typeof o.syscall === 'string' ? o.syscall : undefined,
        path: typeof o.path === 'string' ? o.path : wrapperUri,
      };
    if (typeof o.uri === 'string' && !o.uri.includes('://')) wrapperUri ??= o.uri;
    e = o.cause;
  }
  const m = ERRNO_TEXT.exec(errorMessage(err));
  return m && ERRNO_CODES.has(m[1]) ? { code: m[1], syscall: m[2], path: m[3] } : undefined;
}

function kind(path: string): 'file' | 'folder' | 'other' | undefined {
  try {
    const s = statSync(path);
    return s.isFile() ? 'file' : s.isDirectory() ? 'folder' : 'other';
  } catch {
    return undefined;
  }
}

/** `path` and its ancestors, deepest first. */
function selfAndAncestors(path: string): string[] {
  const out = [path];
  for (let p = dirname(path); p !== out[out.length - 1]; p = dirname(p)) out.push(p);
  return out;
}

/** The argument (flag and value, or a positional value) whose path meets `path`; the longest match wins. */
function argumentFor(
  path: string,
  argv: readonly string[],
): { label: string; flag?: string; at: string } | undefined {
  let best: { label: string; flag?: string; at: string } | undefined;
  argv.forEach((token, i) => {
    let flag: string | undefined;
    let value = token;
    const eq = /^(--[\w-]+)=(.*)$/.exec(token);
    if (eq) [, flag, value] = eq;
    else if (token.startsWith('-')) return;
    else if (i > 0 && /^--[\w-]+$/.test(argv[i - 1])) flag = argv[i - 1];
    if (!value || /^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return;
    const at = resolve(value);
    // The failing path lies in the argument's path, or is a folder the argument's path needs (`--x /afile/f.json`).
    const holds = path === at || path.startsWith(`${at}/`) || at.startsWith(`${path}/`);
    if (holds && (!best || at.length > best.at.length))
      best = { label: flag ? `${flag} ${value}` : value, flag, at };
  });
  return best;
}

const VERBS: Record<string, string> = {
  open: 'open',
  mkdir: 'create the folder',
  rename: 'rename',
  unlink: 'delete',
  rmdir: 'delete',
  scandir: 'list',
  write: 'write',
  copyfile: 'copy to',
  access: 'reach',
  stat: 'reach',
};

function sentence(f: ErrnoFacts & { path: string }, arg: { flag?: string; at: string } | undefined): string {
  const { code, path } = f;
  switch (code) {
    case 'ENOTDIR':
    case 'EEXIST': {
      const blocker = selfAndAncestors(path).find((p) => kind(p) === 'file');
      if (code === 'EEXIST' && f.syscall !== 'mkdir') return `${path} already exists`;
      if (!blocker) return `${path} is not a folder`;
      if (arg && blocker === arg.at)
        return arg.flag
          ? `a file is in the way; ${arg.flag} must be a folder`
          : 'is a file; a folder is expected';
      return `a file is in the way: ${blocker} is a file, not a folder`;
    }
    case 'EISDIR':
      return arg && path === arg.at
        ? 'is a folder; a file is expected'
        : `${path} is a folder; a file is expected`;
    case 'ENOENT': {
      // Name the first part of the path that is missing, not just the file asked for.
      const chain = selfAndAncestors(path);
      const existing = chain.findIndex((p) => kind(p) !== undefined);
      const missing = existing > 0 ? chain[existing - 1] : path;
      return arg && missing === arg.at ? 'does not exist' : `${missing} does not exist`;
    }
    case 'EACCES':
    case 'EPERM':
      return `permission denied: cannot ${VERBS[f.syscall ?? ''] ?? 'use'} ${path} (check its owner and permissions)`;
    case 'EROFS':
      return `${path} is on a read-only file system`;
    case 'ENOSPC':
      return `no space left on the device that holds ${path}`;
    case 'ENOTEMPTY':
      return `${path} is a folder that is not empty`;
    case 'EMFILE':
      return 'too many open files (raise the limit: ulimit -n)';
    default:
      return `${code} at ${path}`;
  }
}

/**
 * The message to print for a failed command: a plain sentence naming the argument for file-system failures
 * (`--out /x/afile: a file is in the way; --out must be a folder`), else the error's own message.
 */
export function explainError(err: unknown, argv: readonly string[] = process.argv.slice(2)): string {
  const f = errnoFacts(err);
  if (!f) return errorMessage(err);
  if (!f.path) return f.code === 'ENOSPC' ? 'no space left on the device' : errorMessage(err);
  const path = resolve(f.path);
  const arg = argumentFor(path, argv);
  const text = sentence({ ...f, path }, arg);
  return arg ? `${arg.label}: ${text}` : text;
}
