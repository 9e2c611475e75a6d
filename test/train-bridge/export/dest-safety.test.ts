// `export --dest` into a folder that holds someone else's files: it stops before writing anything and names the
// file; with force it writes and leaves them alone; a rerun over its own earlier export needs no force.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ForeignFilesError } from '../../../core/foreign-files.ts';
import { exportLlava } from '../../../train-bridge/export/llava.ts';
import { exportWebDataset } from '../../../train-bridge/export/webdataset.ts';
import { writeFixtureMixture } from '../loader/fixtures.ts';

let dir: string;
let mix: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-export-dest-'));
  mix = join(dir, 'mix');
  await writeFixtureMixture(mix, { shards: [3], imageCount: () => 1 });
});
after(() => rm(dir, { recursive: true, force: true }));

async function destWithUserFile(name: string, file: string): Promise<string> {
  const dest = join(dir, name);
  await mkdir(dest, { recursive: true });
  await writeFile(join(dest, file), 'the user’s own file');
  return dest;
}

describe('export --dest safety', () => {
  it('llava: refuses a dest holding a file it did not write, keeps it with force, reruns without', async () => {
    const dest = await destWithUserFile('llava', 'notes.txt');
    await assert.rejects(exportLlava(mix, { dest }), (err: unknown) => {
      assert.ok(err instanceof ForeignFilesError);
      assert.match(err.message, /--dest .*llava holds files mixforge did not write: notes\.txt\./);
      return true;
    });
    assert.deepEqual(await readdir(dest), ['notes.txt'], 'nothing written');

    const r = await exportLlava(mix, { dest, force: true });
    assert.equal(r.samples, 3);
    assert.equal(await readFile(join(dest, 'notes.txt'), 'utf8'), 'the user’s own file');
    assert.deepEqual((await readdir(dest)).sort(), ['images', 'mixture.json', 'notes.txt']);

    const again = join(dir, 'llava-again');
    await exportLlava(mix, { dest: again });
    await exportLlava(mix, { dest: again }); // its own files only: no force needed
    assert.deepEqual((await readdir(again)).sort(), ['images', 'mixture.json']);
  });

  it('webdataset: refuses a dest holding a file it did not write, keeps it with force', async () => {
    const dest = await destWithUserFile('wds', 'train.tar');
    await assert.rejects(exportWebDataset(mix, { dest }), /holds files mixforge did not write: train\.tar\./);
    assert.deepEqual(await readdir(dest), ['train.tar']);

    const r = await exportWebDataset(mix, { dest, force: true });
    assert.equal(r.samples, 3);
    assert.equal(await readFile(join(dest, 'train.tar'), 'utf8'), 'the user’s own file');
    assert.ok(existsSync(join(dest, 'shard-000000.tar')));
    // Its own shards from the forced run are fine, the user's file still is not.
    await assert.rejects(exportWebDataset(mix, { dest }), /train\.tar\./);
  });
});
