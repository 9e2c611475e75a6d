// A shard corrupted on storage (one byte of an image flipped: the parquet still decodes) is never passed on: `stream`,
// the loader's S3 cache and `export` fail naming the shard and row group; the cache keeps no corrupt bytes and serves
// the right ones once the object is fixed; `verify` names the row group.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { parquetMetadata } from 'hyparquet';
import { CorruptShardError } from '../../../core/errors.ts';
import type { Manifest } from '../../../manifests/manifest.ts';
import { verifyBuild } from '../../../manifests/manifest.ts';
import { sha256Hex } from '../../../manifests/shard-integrity.ts';
import { mixtureSamples } from '../../../train-bridge/export/mixture-samples.ts';
import { StreamingDataset } from '../../../train-bridge/loader/dataset.ts';
import { startS3, type TestS3 } from '../../helpers/s3-server.ts';
import { collect, writeFixtureMixture } from './fixtures.ts';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../../cli/main.ts');
const SHARD = 'shards/shard-00000.parquet';

let dir: string;
let good: Buffer;
let bad: Buffer;
/** Byte flipped in `bad`: inside the image bytes of row group 1 of shard 0. */
let flipped: number;
let s3: TestS3;

/** A copy of the mixture at `dir/mix` with shard 0 replaced by `bytes`. */
async function mixtureWith(name: string, bytes: Buffer, from = 'mix'): Promise<string> {
  const out = join(dir, name);
  await cp(join(dir, from), out, { recursive: true });
  await writeFile(join(out, SHARD), bytes);
  return out;
}

const cli = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', CLI, ...args]).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-corrupt-'));
  await writeFixtureMixture(join(dir, 'mix'), {
    shards: [300, 40],
    images: true,
    imageSize: { width: 64, height: 48 },
  });
  await writeFixtureMixture(join(dir, 'legacy'), {
    shards: [300, 40],
    images: true,
    imageSize: { width: 64, height: 48 },
    wholeFileHashOnly: true,
  });
  good = await readFile(join(dir, 'mix', SHARD));
  const meta = parquetMetadata(
    good.buffer.slice(good.byteOffset, good.byteOffset + good.byteLength) as ArrayBuffer,
  );
  const chunk = meta.row_groups[1].columns.find((c) =>
    c.meta_data?.path_in_schema.includes('bytes'),
  )?.meta_data;
  assert.ok(chunk, 'an image bytes column chunk in row group 1');
  flipped = Number(chunk.data_page_offset) + Math.floor(Number(chunk.total_compressed_size) / 2);
  bad = Buffer.from(good);
  bad[flipped] ^= 0x01;
  s3 = await startS3(['mix']);
});
after(async () => {
  await s3.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('a corrupted shard', () => {
  it('without the check it would pass: the flipped byte still decodes', async () => {
    // The premise of every test below: parquet decoding alone does not notice (no page checksums are written).
    const { readShardSamples } = await import('../../../manifests/shard-format.ts');
    const out = await mixtureWith('premise', bad);
    assert.equal((await collect(readShardSamples(join(out, SHARD)))).length, 300);
  });

  it('stops `mixforge stream`, naming the shard and the row group', async () => {
    const out = await mixtureWith('stream', bad);
    const r = await cli(['stream', join(out, 'manifest.json')]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      new RegExp(`${SHARD}: row group 1 \\(bytes \\d+–\\d+\\) has sha256 [0-9a-f]{16}…, the manifest says`),
    );
    assert.match(r.stderr, /corrupt on storage/);
    const ok = await cli(['stream', join(dir, 'mix', 'manifest.json')]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim().split('\n').length, 340);
  });

  it('stops `mixforge export` (both formats) and `inspect` before the corrupt group is used', async () => {
    const out = await mixtureWith('export', bad);
    for (const format of ['llava', 'webdataset']) {
      const dest = join(dir, `dest-${format}`);
      const r = await cli(['export', out, '--format', format, '--dest', dest]);
      assert.notEqual(r.code, 0, `${format} exported a corrupt shard`);
      assert.match(r.stderr, new RegExp(`${SHARD}: row group 1 .*corrupt on storage`));
      assert.ok(!(await readdir(dest)).includes('mixture.json'), 'no finished export');
    }
    // `inspect` reads samples the same way.
    const inspect = await cli(['inspect', out, '--samples', '300']);
    assert.notEqual(inspect.code, 0);
    assert.match(inspect.stderr, new RegExp(`${SHARD}: row group 1 .*corrupt on storage`));
    // Row group 0 of the same shard is intact and is read; the export fails at group 1.
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const s of mixtureSamples(out)) seen.push(s.id);
      })(),
      CorruptShardError,
    );
    assert.equal(seen.length, 256);
  });

  it('is never cached by the loader, and the fixed object is served afterwards', async () => {
    const put = (name: string, body: Buffer) =>
      s3.client.send(new PutObjectCommand({ Bucket: 'mix', Key: `m/${name}`, Body: body }));
    for (const name of ['manifest.json', 'shards/shard-00001.parquet'])
      await put(name, await readFile(join(dir, 'mix', name)));
    await put(SHARD, bad);
    const manifest = JSON.parse(await readFile(join(dir, 'mix', 'manifest.json'), 'utf8')) as Manifest;
    const badGroup = manifest.shards[0].rowGroupSha256?.[1];
    assert.ok(badGroup);
    const cacheDir = join(dir, 'cache');
    const opts = { lanes: 2, shuffleBuffer: 64, cacheDir };
    await assert.rejects(
      collect(new StreamingDataset('s3://mix/m/manifest.json', opts)),
      (err: Error) =>
        err instanceof CorruptShardError && err.message.includes(`s3://mix/m/${SHARD}: row group 1`),
    );
    const cached = async () => (await readdir(cacheDir)).filter((n) => n.endsWith('.rg'));
    assert.ok(!(await cached()).includes(`${badGroup}.rg`), 'the corrupt group was cached');
    // Every entry that was kept holds exactly the bytes its name (their sha256) promises.
    for (const n of await cached())
      assert.equal(sha256Hex(await readFile(join(cacheDir, n))), n.slice(0, -3));

    await put(SHARD, good);
    const local = await collect(new StreamingDataset(join(dir, 'mix', 'manifest.json'), opts));
    const fixed = new StreamingDataset('s3://mix/m/manifest.json', opts);
    const remote = await collect(fixed);
    assert.deepEqual(
      remote.map((s) => [s.id, Buffer.from(s.images[0].bytes).toString('base64')]),
      local.map((s) => [s.id, Buffer.from(s.images[0].bytes).toString('base64')]),
    );
    assert.ok((await cached()).includes(`${badGroup}.rg`), 'the good group is cached now');

    // A cache entry damaged on local disk is not served: it is fetched again and replaced.
    const entry = join(cacheDir, `${badGroup}.rg`);
    const onDisk = await readFile(entry);
    onDisk[onDisk.length >> 1] ^= 0xff;
    await writeFile(entry, onDisk);
    const again = new StreamingDataset('s3://mix/m/manifest.json', opts);
    assert.deepEqual(
      (await collect(again)).map((s) => Buffer.from(s.images[0].bytes).toString('base64')),
      local.map((s) => Buffer.from(s.images[0].bytes).toString('base64')),
    );
    assert.ok(again.ioStats().bytesFetched > 0, 'the damaged entry was fetched again');
    assert.equal(sha256Hex(await readFile(entry)), badGroup);
  });

  it('is checked without giving up ranged reads: one rank of two fetches about half the bytes', async () => {
    // Eight row groups of 256 rows; with two lanes, rank 0 of 2 reads the four groups of its lane.
    const wide = join(dir, 'wide');
    const manifest = await writeFixtureMixture(wide, { shards: [1024, 1024] });
    for (const name of ['manifest.json', SHARD, 'shards/shard-00001.parquet'])
      await s3.client.send(
        new PutObjectCommand({ Bucket: 'mix', Key: `wide/${name}`, Body: await readFile(join(wide, name)) }),
      );
    const rank = new StreamingDataset('s3://mix/wide/manifest.json', { rank: 0, worldSize: 2, lanes: 2 });
    assert.equal((await collect(rank)).length, 1024);
    const fetched = rank.ioStats().bytesFetched;
    // A whole-file check would have fetched both shards entirely.
    assert.ok(
      fetched > 0.4 * manifest.totals.bytes && fetched < 0.6 * manifest.totals.bytes,
      `${fetched} bytes fetched of ${manifest.totals.bytes}: the check forced whole-shard reads`,
    );
  });

  it('is caught at open when the footer is damaged, and by the whole-file hash of an older manifest', async () => {
    const manifest = JSON.parse(await readFile(join(dir, 'mix', 'manifest.json'), 'utf8')) as Manifest;
    const footerAt = manifest.shards[0].footer?.offset ?? 0;
    const footer = Buffer.from(good);
    footer[footerAt + 10] ^= 0x01;
    const out = await mixtureWith('footer', footer);
    await assert.rejects(
      collect(new StreamingDataset(join(out, 'manifest.json'))),
      (err: Error) =>
        err instanceof CorruptShardError && err.message.includes(`${SHARD}: the footer has sha256`),
    );
    const legacy = await mixtureWith('legacy-bad', bad, 'legacy');
    await assert.rejects(
      collect(new StreamingDataset(join(legacy, 'manifest.json'))),
      (err: Error) => err instanceof CorruptShardError && err.message.includes(`${SHARD}: sha256`),
    );
    assert.equal((await collect(new StreamingDataset(join(dir, 'legacy', 'manifest.json')))).length, 340);
  });

  it('is reported by `verify` with its row group', async () => {
    const out = await mixtureWith('verify', bad);
    const problems = await verifyBuild(out);
    assert.ok(problems.some((p) => p.startsWith(`${SHARD}: sha256 `)));
    assert.ok(
      problems.some((p) => p.startsWith(`${SHARD}: row group 1 sha256 `)),
      problems.join('\n'),
    );
    assert.ok(!problems.some((p) => p.includes('row group 0')), 'row group 0 is intact');
    // (The fixture has no quarantine file and no component counts; only its shards matter here.)
    assert.deepEqual(
      (await verifyBuild(join(dir, 'mix'))).filter((p) => p.startsWith('shards/')),
      [],
    );
  });
});
