// withNativeStderrFiltered: lines written straight to fd 2 (as dawn.node's native code does) during the call are
// dropped when they match and passed on otherwise (stderr a file or a pipe; a socket passes everything);
// `mixforge gpu info` no longer prints Dawn's two "artificially reduced" warnings.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const CHILD = `
import { writeSync } from 'node:fs';
import { withNativeStderrFiltered } from './train-bridge/gpu/native-stderr.ts';
writeSync(2, 'before: Warning: noise 1\\n');
const r = withNativeStderrFiltered(/^Warning: noise/, () => {
  writeSync(2, 'Warning: noise 2\\nWarning: something else\\n');
  return 7;
});
process.stderr.write('after ' + r + '\\n');
`;

/** Runs node with `args`, its stderr going to a file of its own (Node's own 'pipe' would be a socket). */
function stderrToFile(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mixforge-native-stderr-'));
  const file = join(dir, 'stderr');
  const fd = openSync(file, 'w');
  try {
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', fd] });
    return { status: r.status, stdout: r.stdout, stderr: readFileSync(file, 'utf8') };
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

const EVAL = ['--import', 'tsx', '--input-type=module', '-e', CHILD];

test('matching lines written to fd 2 inside the call are dropped, the others kept, stderr restored', () => {
  const r = stderrToFile(EVAL);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, 'before: Warning: noise 1\nWarning: something else\nafter 7\n');
  // Through a real pipe as well (a shell pipeline).
  const piped = spawnSync('sh', ['-c', `"${process.execPath}" "$@" 2>&1 >/dev/null | cat`, 'sh', ...EVAL], {
    encoding: 'utf8',
  });
  assert.equal(piped.stdout, 'before: Warning: noise 1\nWarning: something else\nafter 7\n');
});

test('a socket as stderr (what Node gives a child for "pipe") cannot be reopened: nothing is filtered, nothing lost', () => {
  const r = spawnSync(process.execPath, EVAL, { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, 'before: Warning: noise 1\nWarning: noise 2\nWarning: something else\nafter 7\n');
});

test('`mixforge gpu info` prints the adapter without Dawn’s limit warnings', () => {
  const r = stderrToFile(['bin/mixforge.js', 'gpu', 'info']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^adapter {6}\S/);
  assert.doesNotMatch(r.stderr, /artificially reduced/);
});
