import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { StreamingDataset } from '../../../train-bridge/loader/dataset.ts';
import { startS3, type TestS3 } from '../../helpers/s3-server.ts';
import { collect, writeFixtureMixture } from './fixtures.ts';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../../cli/main.ts');

let dir: string;
let s3: TestS3;
const SHARDS = [300, 280];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-stream-'));
  await writeFixtureMixture(join(dir, 'mix'), { shards: SHARDS, images: false });
  s3 = await startS3(['mix']);
  for (const name of ['manifest.json', 'shards/shard-00000.parquet', 'shards/shard-00001.parquet'])
    await s3.client.send(
      new PutObjectCommand({
        Bucket: 'mix',
        Key: `m1/${name}`,
        Body: await readFile(join(dir, 'mix', name)),
      }),
    );
});
after(async () => {
  await s3.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('StreamingDataset over S3', () => {
  it('streams the same order from S3 with ranged reads into a bounded local cache, reused on the next run', async () => {
    const opts = { lanes: 2, shuffleBuffer: 200 };
    const local = await collect(new StreamingDataset(join(dir, 'mix', 'manifest.json'), opts));
    const cacheDir = join(dir, 'cache');
    const first = new StreamingDataset('s3://mix/m1/manifest.json', { ...opts, cacheDir });
    assert.deepEqual(
      (await collect(first)).map((s) => s.id),
      local.map((s) => s.id),
    );
    const fetched = first.ioStats().bytesFetched;
    const shardBytes = JSON.parse(await readFile(join(dir, 'mix', 'manifest.json'), 'utf8')).totals
      .bytes as number;
    // Ranged reads of the row groups only (each checked against its hash): less than the shard files (footers).
    assert.ok(fetched > 0 && fetched < shardBytes, `${fetched} bytes fetched of ${shardBytes}`);
    const entries = (await readdir(cacheDir)).filter((n) => n.endsWith('.rg'));
    assert.equal(
      entries.length,
      SHARDS.reduce((a, r) => a + Math.ceil(r / 256), 0),
    );
    const second = new StreamingDataset('s3://mix/m1/manifest.json', { ...opts, cacheDir, epoch: 1 });
    const epoch1 = await collect(second);
    assert.equal(second.ioStats().bytesFetched, 0, 'second run served from the cache');
    assert.deepEqual(epoch1.map((s) => s.id).sort(), local.map((s) => s.id).sort());
    // A cache smaller than the data stays within its bound and still serves the right samples.
    const small = join(dir, 'small-cache');
    const bound = Math.ceil(fetched / 3);
    const third = new StreamingDataset('s3://mix/m1/manifest.json', {
      ...opts,
      cacheDir: small,
      cacheMaxBytes: bound,
    });
    assert.deepEqual(
      (await collect(third)).map((s) => s.id),
      local.map((s) => s.id),
    );
    let held = 0;
    for (const n of await readdir(small)) held += (await stat(join(small, n))).size;
    assert.ok(held <= bound, `${held} bytes cached, bound ${bound}`);
  });
});

describe('mixforge stream', () => {
  it('prints ids, saves a state, and resumes it on another world size covering exactly what was left', async () => {
    const manifest = join(dir, 'mix', 'manifest.json');
    const cli = (args: string[]) =>
      run(process.execPath, ['--import', 'tsx', CLI, 'stream', manifest, ...args]);
    const all = (await cli(['--seed', '5'])).stdout.trim().split('\n');
    assert.equal(all.length, 580);
    const stateFile = join(dir, 'state.json');
    const ranks = await Promise.all(
      [0, 1].map((r) =>
        cli([
          '--seed',
          '5',
          '--rank',
          String(r),
          '--world-size',
          '2',
          '--limit',
          '100',
          '--state-out',
          stateFile,
        ]),
      ),
    );
    const head = ranks.flatMap((r) => r.stdout.trim().split('\n'));
    assert.deepEqual(head.sort(), all.slice(0, 200).sort());
    const state = JSON.parse(await readFile(stateFile, 'utf8'));
    assert.equal(state.position, 200);
    assert.equal(state.worldSizeAtSave, 2);
    const rest = await Promise.all(
      [0, 1, 2].map((r) =>
        cli(['--resume', stateFile, '--rank', String(r), '--world-size', '3', '--remainder', 'drop']),
      ),
    );
    const tail = rest.flatMap((r) => r.stdout.trim().split('\n'));
    assert.deepEqual(tail.sort(), all.slice(200, 200 + 3 * Math.floor(380 / 3)).sort());
    await assert.rejects(cli(['--world-size', 'x']), /--world-size must be an integer/);
  });
});

describe('mixforge export', () => {
  it('writes both formats from the command line', async () => {
    const out = join(dir, 'mix');
    const llava = await run(process.execPath, [
      '--import',
      'tsx',
      CLI,
      'export',
      out,
      '--format',
      'llava',
      '--dest',
      join(dir, 'l'),
    ]);
    assert.match(llava.stdout, /^580 samples, 0 images → /);
    const records = JSON.parse(await readFile(join(dir, 'l', 'mixture.json'), 'utf8')) as { id: string }[];
    assert.equal(records.length, 580);
    const wds = await run(process.execPath, [
      '--import',
      'tsx',
      CLI,
      'export',
      out,
      '--format',
      'webdataset',
      '--dest',
      join(dir, 'w'),
      '--samples-per-shard',
      '250',
    ]);
    assert.match(wds.stdout, /^580 samples → 3 tar shards/);
    await assert.rejects(
      run(process.execPath, [
        '--import',
        'tsx',
        CLI,
        'export',
        out,
        '--format',
        'zip',
        '--dest',
        join(dir, 'z'),
      ]),
      /--format must be llava or webdataset/,
    );
  });
});
