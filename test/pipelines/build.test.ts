// The build end to end on the demo data (every source format, bad records included): determinism under
// concurrency and partitioning, accounting, verify, resume after a kill, and readers other than ours.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { tableFromIPC } from 'apache-arrow';
import { readParquet } from 'parquet-wasm/node';
import type { Sample } from '../../core/schema.ts';
import { demoOverrides, shippedSpecPath } from '../../demo/spec-overrides.ts';
import { verifyBuild } from '../../manifests/manifest.ts';
import { readShardSamples } from '../../manifests/shard-format.ts';
import { loadSpec } from '../../manifests/spec.ts';
import type { MixtureSpec } from '../../manifests/spec-schema.ts';
import { type BuildOptions, makeBuildContext } from '../../pipelines/context.ts';
import type { BuildEvent } from '../../pipelines/events.ts';
import { runBuildInProcess } from '../../pipelines/executor-inprocess.ts';
import { demoDataDir, spawnSlowDemoBuild } from '../helpers/demo-data.ts';
import { publishedHashes } from '../helpers/published-hashes.ts';

let data = '';
let tmp = '';
let spec: MixtureSpec;

async function build(name: string, options: Partial<BuildOptions> = {}, concurrency = 2, s = spec) {
  const out = join(tmp, name);
  const manifest = await runBuildInProcess(makeBuildContext(s, out, options), { concurrency });
  return { out, manifest };
}

before(async () => {
  data = await demoDataDir();
  tmp = await mkdtemp(join(tmpdir(), 'mixforge-build-'));
  spec = await loadSpec(shippedSpecPath('demo'), { env: { MIXFORGE_DEMO_DATA: data } });
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('build', () => {
  let reference: Record<string, string>;
  let refOut = '';

  it('builds every demo source, accounts for every record and verifies', async () => {
    const { out, manifest } = await build('ref');
    refOut = out;
    reference = publishedHashes(out);
    assert.deepEqual(await verifyBuild(out), []);
    assert.equal(manifest.components.length, 7);
    for (const c of manifest.components) {
      const dropped = Object.values(c.counts.dropped).reduce((a, b) => a + b, 0);
      assert.equal(c.counts.in, c.counts.kept + dropped, `${c.name} balances`);
      assert.ok(c.counts.kept > 0, `${c.name} kept samples`);
    }
    const by = Object.fromEntries(manifest.components.map((c) => [c.name, c]));
    assert.equal(
      by.recap.counts.kept,
      Math.min(20, by.recap.counts.kept + (by.recap.counts.dropped['not-taken'] ?? 0)),
    );
    assert.equal(by.llava665k.counts.emitted, 2 * by.llava665k.counts.kept, 'repeat: 2 doubles the rows');
    assert.ok(
      (by.cambrian.counts.dropped['filter:image_only'] ?? 0) > 0,
      'text-only cambrian counted under its filter',
    );
    const quarantined = manifest.components.flatMap((c) =>
      Object.keys(c.counts.dropped).filter((k) => k.startsWith('quarantine:')),
    );
    assert.ok(
      quarantined.length >= 3,
      `bad demo records are quarantined with reasons (${quarantined.join(', ')})`,
    );
    assert.equal(manifest.totals.quarantined, manifest.quarantine.rows);
    assert.equal(
      manifest.totals.rows,
      manifest.shards.reduce((a, s) => a + s.rows, 0),
    );
    const manifestText = readFileSync(join(out, 'manifest.json'), 'utf8');
    assert.doesNotMatch(manifestText, /20\d\d-\d\d-\d\dT/, 'no timestamps in the manifest');
  });

  it('is byte-identical on rebuild, at any concurrency and partition size', async () => {
    const again = await build('again');
    assert.deepEqual(publishedHashes(again.out), reference);
    const fine = await build('fine', { partitionRecords: 3, partitionBytes: 1500 }, 4);
    assert.deepEqual(publishedHashes(fine.out), reference);
    const serial = await build(
      'serial',
      { partitionRecords: 7, partitionBytes: 5000, selectBucketRows: 5 },
      1,
    );
    assert.deepEqual(publishedHashes(serial.out), reference);
  });

  it('orders rows by key inside each shard and shards by key range', async () => {
    const db = await (await DuckDBInstance.create()).connect();
    const r = await db.runAndReadAll(
      `SELECT filename, count(*) AS n, min(key) AS lo, max(key) AS hi, sum(len(images)) AS imgs
       FROM read_parquet('${refOut}/shards/*.parquet', filename = true) GROUP BY filename ORDER BY filename`,
    );
    const rows = r.getRowObjects() as { filename: string; n: bigint; lo: bigint; hi: bigint }[];
    assert.ok(rows.length >= 2, 'several shards');
    for (let i = 1; i < rows.length; i++)
      assert.ok(rows[i - 1].hi < rows[i].lo, 'shard key ranges are disjoint and ordered');
    const total = rows.reduce((a, x) => a + Number(x.n), 0);
    const m = JSON.parse(readFileSync(join(refOut, 'manifest.json'), 'utf8')) as { totals: { rows: number } };
    assert.equal(total, m.totals.rows, 'DuckDB reads every row');
    const sorted = await db.runAndReadAll(
      `SELECT count(*) AS bad FROM (SELECT key, lag(key) OVER (PARTITION BY filename ORDER BY file_row_number) AS prev
       FROM read_parquet('${refOut}/shards/*.parquet', filename = true, file_row_number = true)) WHERE prev >= key`,
    );
    assert.equal(
      Number((sorted.getRowObjects()[0] as { bad: bigint }).bad),
      0,
      'rows sorted by key inside shards',
    );
    const q = await db.runAndReadAll(
      `SELECT reason, count(*) AS n FROM '${refOut}/quarantine/quarantine.parquet' GROUP BY reason`,
    );
    assert.ok(q.getRowObjects().length >= 1, 'quarantine is queryable like the shards');
  });

  it('Apache Arrow (arrow-rs via parquet-wasm) reads the shards with the sample schema and our rows', async () => {
    const m = JSON.parse(readFileSync(join(refOut, 'manifest.json'), 'utf8')) as {
      shards: { path: string; rows: number }[];
    };
    for (const shard of m.shards) {
      const path = join(refOut, shard.path);
      const table = tableFromIPC(readParquet(readFileSync(path)).intoIPCStream());
      assert.deepEqual(
        table.schema.fields.map((f) => `${f.name}:${f.type}`),
        [
          'id:Utf8',
          'source:Utf8',
          'images:List<Struct<{bytes:Binary, width:Int32, height:Int32, format:Utf8}>>',
          'conversations:List<Struct<{from:Utf8, value:Utf8}>>',
          'origin:Utf8',
          'key:Uint64',
          'metadata:Utf8',
        ],
      );
      assert.equal(table.numRows, shard.rows);
      const ours: Sample[] = [];
      for await (const s of readShardSamples(path)) ours.push(s);
      for (let i = 0; i < table.numRows; i++) {
        const row = table.get(i)?.toJSON() as {
          id: string;
          key: bigint;
          images: { toArray(): { bytes: Uint8Array }[] };
        };
        assert.equal(row.id, ours[i].id);
        assert.equal(row.key, ours[i].key);
        const images = row.images.toArray();
        assert.equal(images.length, ours[i].images.length);
        for (const [j, im] of images.entries())
          assert.deepEqual(Buffer.from(im.bytes), Buffer.from(ours[i].images[j].bytes));
      }
    }
  });

  it('resolves duplicates to the earliest component, the same with select memory bounded to a few rows', async () => {
    // it-1.1m's demo overrides read the demo 665K file twice (llava665k, then it_splits): every it_splits
    // sample duplicates an earlier one.
    const o = demoOverrides('it-1.1m', data);
    const dupSpec = await loadSpec(shippedSpecPath('it-1.1m'), { env: o.env, set: ['output.shard_rows=20'] });
    const wide = await build('dup-wide', {}, 2, dupSpec);
    const by = Object.fromEntries(wide.manifest.components.map((c) => [c.name, c.counts]));
    assert.equal(by.it_splits.kept, 0);
    assert.equal(by.it_splits.dropped.dedup, by.llava665k.kept, 'each later copy is dropped as a duplicate');
    const narrow = await build('dup-narrow', { selectBucketRows: 4, partitionBytes: 3000 }, 1, dupSpec);
    assert.deepEqual(publishedHashes(narrow.out), publishedHashes(wide.out));
  });

  it('raises the shard count to meet output.max_shard_bytes', async () => {
    const small = { ...spec, output: { ...spec.output, shard_rows: 1000, max_shard_bytes: 200_000 } };
    const { manifest } = await build('bytes', {}, 2, small);
    const total = manifest.shards.reduce((a, s) => a + s.bytes, 0);
    assert.ok(
      manifest.shards.length >= Math.ceil(total / 200_000),
      `${manifest.shards.length} shards for ${total} bytes`,
    );
    assert.ok(manifest.shards.length > 1, 'more than the one shard shard_rows alone would give');
  });

  it('a changed spec rebuilt into the same output rebuilds, and leaves no shard of the old build behind', async () => {
    const out = join(tmp, 'respec');
    const first = await runBuildInProcess(makeBuildContext(spec, out));
    const fewer = { ...spec, output: { ...spec.output, shard_rows: 1000 } };
    const second = await runBuildInProcess(makeBuildContext(fewer, out));
    assert.ok(first.shards.length > 1);
    assert.equal(second.shards.length, 1);
    assert.notEqual(second.specHash, first.specHash);
    assert.deepEqual(readdirSync(join(out, 'shards')), ['shard-00000.parquet']);
    assert.deepEqual(await verifyBuild(out), []);
  });

  it('verify names a corrupted shard', async () => {
    const { out } = await build('corrupt');
    const shard = join(out, 'shards', readdirSync(join(out, 'shards'))[0]);
    const bytes = readFileSync(shard);
    bytes[100] ^= 0xff;
    await writeFile(shard, bytes);
    const problems = await verifyBuild(out);
    assert.ok(
      problems.some((p) => p.includes('shard-00000.parquet') && p.includes('sha256')),
      problems.join('; '),
    );
  });

  it('resumes after being killed mid-build and ends byte-identical', async () => {
    const out = join(tmp, 'killed');
    const child = spawnSlowDemoBuild(data, out, 'inherit');
    let ingested = 0;
    for await (const line of createInterface({ input: child.stdout })) {
      const e = JSON.parse(line) as BuildEvent;
      if (e.type === 'job-done' && e.stage === 'ingest' && ++ingested === 4) {
        child.kill('SIGKILL');
        break;
      }
    }
    await new Promise((r) => child.once('exit', r));
    assert.equal(ingested, 4, 'killed during ingest');
    const events: BuildEvent[] = [];
    await runBuildInProcess(makeBuildContext(spec, out, { partitionRecords: 3, partitionBytes: 1500 }), {
      concurrency: 2,
      onEvent: (e) => events.push(e),
    });
    const skipped = events.filter((e) => e.type === 'job-done' && !e.ran).length;
    assert.ok(skipped >= 4, `the rerun skipped the finished jobs (${skipped})`);
    assert.deepEqual(publishedHashes(out), reference);
    const rerun: BuildEvent[] = [];
    await runBuildInProcess(makeBuildContext(spec, out), { onEvent: (e) => rerun.push(e) });
    assert.equal(
      rerun.filter((e) => e.type === 'job-done' && e.ran).length,
      0,
      'a finished build is not redone',
    );
  });
});
