// `mixforge train --pack N` end to end through bin/mixforge.js on lavapipe: a 1-update fastvlm-tiny run on packs
// asks for the token sidecar first, prints the packing efficiency, keeps the packed loader state in its checkpoint,
// and refuses a resume with another capacity and packing combined with --group-by-modality-length.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { trainPairsMixture } from '../train-bridge/train/fixtures.ts';

const BIN = resolve('bin/mixforge.js');
let manifest: string;
let root: string;
before(async () => {
  manifest = await trainPairsMixture();
  root = await mkdtemp(join(tmpdir(), 'mixforge-train-pack-cli-'));
});
after(() => rm(root, { recursive: true, force: true }));

function mixforge(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 240_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout, stderr: r.stderr };
}

test('--pack trains on packs, prints the packing efficiency and keeps the packed state for resume', async () => {
  const dir = join(root, 'packed');
  const mix = join(root, 'packed-mixture');
  await cp(dirname(manifest), mix, { recursive: true });
  await rm(join(mix, 'tokens'), { recursive: true, force: true });
  const own = join(mix, 'manifest.json');
  const args = [
    ...['train', own, '--checkpoint-dir', dir, '--model', 'fastvlm-tiny', '--preset', 'stage2'],
    ...[
      '--resolution',
      '64',
      '--batch-size',
      '4',
      '--micro-batch',
      '2',
      '--steps',
      '1',
      '--max-length',
      '96',
    ],
    ...['--pack', '128', '--pack-window', '8'],
  ];
  const missing = mixforge(...args);
  assert.equal(missing.code, 1, missing.out);
  assert.match(
    missing.stderr,
    /no token counts at resolution 64 \(run: mixforge tokens .* --resolution 64\)/,
  );
  assert.equal(mixforge('tokens', own, '--resolution', '64').code, 0);
  const r = mixforge(...args);
  assert.equal(r.code, 0, r.out);
  assert.match(r.stderr, /for 1 updates of 4 packs of ≤ 128 tokens \(2 × 2\)/);
  assert.match(r.stderr, /step 1\/1 .* pack \d+\.\d%/);
  assert.match(
    r.stderr,
    /packing epoch 0: 26 samples into 7 packs of ≤ 128 tokens, \d+\.\d% of their positions used/,
  );
  const used = /packing: (\d+) tokens in 512 pack positions \((\d+\.\d)% used\)/.exec(r.stdout);
  assert.ok(used, r.stdout);
  assert.ok(Number(used[2]) > 30, `packing ${used[2]}%`);
  const state = JSON.parse(await readFile(join(dir, 'step-00000001', 'trainer.json'), 'utf8'));
  assert.equal(state.loader.kind, 'mixforge.packed-state');
  assert.deepEqual(state.config.text.pack, { capacity: 128, window: 8 });
  const other = mixforge('train', own, '--checkpoint-dir', dir, '--resume', '--steps', '2', '--pack', '256');
  assert.equal(other.code, 1, other.out);
  assert.match(other.stderr, /--pack.*256 differs from the checkpoint's 128/);
  const both = mixforge(...args, '--group-by-modality-length');
  assert.match(both.stderr, /does not combine with --group-by-modality-length/);
});
