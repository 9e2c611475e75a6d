// File-system failures as the CLI prints them: a plain sentence naming the argument, never raw errno text.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { explainError } from '../../cli/explain-error.ts';
import { StorageError } from '../../core/errors.ts';
import { shippedSpecPath } from '../../demo/spec-overrides.ts';
import { writeFixtureMixture } from '../train-bridge/loader/fixtures.ts';

const CLI = join(import.meta.dirname, '../../cli/main.ts');
const RAW_ERRNO = /\bE(NOTDIR|EXIST|ISDIR|NOENT|ACCES|PERM)\b|no such file or directory|not a directory, /;

let dir = '';
let afile = '';
let mix = '';

function mixforge(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
    });
    child.on('close', (code) => resolve({ code, stderr: stderr.trim() }));
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-errno-'));
  afile = join(dir, 'afile');
  await writeFile(afile, 'a file the user keeps\n');
  await mkdir(join(dir, 'a-folder'));
  mix = join(dir, 'mix');
  await writeFixtureMixture(mix, { shards: [20] });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('file-system failures through the CLI', () => {
  it('name the argument in a plain sentence', async () => {
    const cases: [string[], string][] = [
      [
        ['build', shippedSpecPath('demo'), '--out', afile],
        `mixforge: --out ${afile}: a file is in the way; --out must be a folder`,
      ],
      [
        ['build', shippedSpecPath('demo'), '--out', join(afile, 'sub')],
        `mixforge: --out ${join(afile, 'sub')}: a file is in the way: ${afile} is a file, not a folder`,
      ],
      [
        ['export', mix, '--format', 'llava', '--dest', afile],
        `mixforge: --dest ${afile}: a file is in the way; --dest must be a folder`,
      ],
      [
        ['stream', join(mix, 'manifest.json'), '--limit', '1', '--state-out', join(afile, 'state.json')],
        `mixforge: --state-out ${join(afile, 'state.json')}: a file is in the way: ${afile} is a file, not a folder`,
      ],
      [['verify', join(dir, 'none')], `mixforge: ${join(dir, 'none')}: does not exist`],
      [
        ['build', join(dir, 'missing.yaml'), '--out', join(dir, 'o')],
        `mixforge: ${join(dir, 'missing.yaml')}: does not exist`,
      ],
      [
        ['build', join(dir, 'a-folder'), '--out', join(dir, 'o')],
        `mixforge: ${join(dir, 'a-folder')}: is a folder; a file is expected`,
      ],
      [['stream', afile], `mixforge: ${afile}: is a file; a folder is expected`],
    ];
    const runs = await Promise.all(cases.map(([args]) => mixforge(args)));
    runs.forEach((r, i) => {
      assert.equal(r.code, 1, cases[i][0].join(' '));
      const last = r.stderr.split('\n').at(-1);
      assert.equal(last, cases[i][1]);
      assert.doesNotMatch(r.stderr, RAW_ERRNO);
    });
  });
});

describe('explainError', () => {
  it('explains permission, space and read-only failures, and errno text from a worker', () => {
    const errno = (code: string, syscall: string, path: string) =>
      Object.assign(new Error(`${code}: something, ${syscall} '${path}'`), { code, syscall, path });
    const out = join(dir, 'out');
    assert.equal(
      explainError(
        new StorageError(join(out, 'x'), 'write failed', { cause: errno('EACCES', 'open', join(out, 'x')) }),
        ['build', 'spec.yaml', '--out', out],
      ),
      `--out ${out}: permission denied: cannot open ${join(out, 'x')} (check its owner and permissions)`,
    );
    assert.equal(
      explainError(errno('EROFS', 'mkdir', join(out, '_build')), [`--out=${out}`]),
      `--out ${out}: ${join(out, '_build')} is on a read-only file system`,
    );
    assert.equal(
      explainError(errno('ENOSPC', 'write', join(out, 'a')), []),
      `no space left on the device that holds ${join(out, 'a')}`,
    );
    // Only the text survived (a job failure reported by a worker process).
    assert.equal(
      explainError(
        new Error(`job write 3 failed: ENOTDIR: not a directory, mkdir '${join(afile, '_build')}'`),
        ['--out', afile],
      ),
      `--out ${afile}: a file is in the way; --out must be a folder`,
    );
    // Anything else keeps its own message.
    assert.equal(
      explainError(new Error('spec.yaml at seed: must be an integer'), []),
      'spec.yaml at seed: must be an integer',
    );
  });
});
