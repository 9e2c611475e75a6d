// Drops chosen lines that native code (dawn.node) writes straight to file descriptor 2 during one synchronous call,
// passing every other line on. Node has no dup2, so fd 2 is closed and reopened through /proc/self/fd (Linux).
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Runs `fn` with fd 2 pointing at a temporary file, then restores it and writes the captured lines that do not
 * match `drop`. Only when stderr is a terminal, a pipe or a file of its own: reopening those gives an equivalent
 * descriptor, whereas a file shared with stdout (`> log 2>&1`) would lose its shared offset, so there nothing is
 * filtered.
 * `fn` must do its native printing synchronously (what it returns, a promise included, is passed through).
 */
export function withNativeStderrFiltered<T>(drop: RegExp, fn: () => T): T {
  if (process.platform !== 'linux') return fn();
  let original: number;
  try {
    const st = fstatSync(2);
    if (st.isFile()) {
      const out = fstatSync(1);
      if (out.dev === st.dev && out.ino === st.ino) return fn();
    } else if (!st.isCharacterDevice() && !st.isFIFO()) return fn();
    original = openSync('/proc/self/fd/2', 'a');
  } catch {
    return fn(); // stderr closed, a socket, or no /proc: leave it alone
  }
  const dir = mkdtempSync(join(tmpdir(), 'mixforge-stderr-'));
  const capture = join(dir, 'stderr');
  let moved = false;
  const restore = () => {
    if (moved) closeSync(2);
    const back = openSync(`/proc/self/fd/${original}`, 'a');
    closeSync(original);
    if (back !== 2) throw new Error(`could not restore stderr (it reopened as fd ${back})`);
    const lines = readFileSync(capture, 'utf8').split('\n');
    if (lines.at(-1) === '') lines.pop();
    const kept = lines.filter((l) => !drop.test(l));
    if (kept.length > 0) writeSync(2, `${kept.join('\n')}\n`);
    rmSync(dir, { recursive: true, force: true });
  };
  let result: T;
  try {
    closeSync(2);
    // The lowest free descriptor is 2 (0 and 1 are open), so the capture file takes its place.
    const fd = openSync(capture, 'w+');
    moved = fd === 2;
    if (!moved) closeSync(fd);
    result = fn();
  } catch (err) {
    restore();
    throw err;
  }
  restore();
  return result;
}
