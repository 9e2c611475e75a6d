// near_dedup in a build: re-encoded/edited copies across and within components are dropped with the kept sample's
// id in their quarantine record, exact copies stay exact dedup's, different questions on one image stay; the
// output is byte-identical at any concurrency and partitioning and after a resume mid-bands; scope: within keeps
// cross-component copies.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyBuild } from '../../manifests/manifest.ts';
import { writeReport } from '../../manifests/report.ts';
import type { MixtureSpec } from '../../manifests/spec-schema.ts';
import { BuildInterruptedError } from '../../pipelines/build-envelope.ts';
import { type BuildOptions, makeBuildContext } from '../../pipelines/context.ts';
import { runBuildInProcess } from '../../pipelines/executor-inprocess.ts';
import { decontaminationSpec, writeNearDupFixtures } from '../helpers/near-dup-fixtures.ts';
import { publishedHashes } from '../helpers/published-hashes.ts';

let tmp = '';
let spec: MixtureSpec;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'mixforge-near-dedup-'));
  spec = await writeNearDupFixtures(tmp);
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function build(name: string, options: Partial<BuildOptions> = {}, concurrency = 2, s = spec) {
  const out = join(tmp, name);
  const manifest = await runBuildInProcess(makeBuildContext(s, out, options), { concurrency });
  return { out, manifest };
}

describe('near_dedup in a build', () => {
  let reference: Record<string, string>;

  it('drops near-duplicates under their reasons, with the kept id in the quarantine record', async () => {
    const { out, manifest } = await build('ref', { keepIntermediate: true });
    reference = publishedHashes(out);
    assert.deepEqual(await verifyBuild(out), []);
    const by = Object.fromEntries(manifest.components.map((c) => [c.name, c.counts]));
    assert.deepEqual(by.a.dropped, { 'near-duplicate-image': 1 });
    assert.equal(by.a.kept, 9);
    assert.deepEqual(by.b.dropped, { dedup: 1, 'near-duplicate-image': 3, 'near-duplicate-text': 3 });
    assert.equal(by.b.kept, 2);
    const q = readFileSync(join(out, '_build', 'near-dup', 'quarantine.jsonl'), 'utf8');
    const records = q
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; reason: string; message: string });
    const of = Object.fromEntries(records.map((r) => [r.id, r]));
    for (const i of [0, 1, 2]) {
      assert.equal(of[`b/b${i}`]?.reason, 'near-duplicate-image');
      assert.match(of[`b/b${i}`].message, new RegExp(`near-duplicate of a/a${i} \\(a\\)`));
    }
    for (const i of [3, 4, 8]) assert.equal(of[`b/b${i}`]?.reason, 'near-duplicate-text');
    assert.match(of['b/b8'].message, /near-duplicate of a\/a7 \(a\): image distance 0/);
    // a8 and a9 are one cluster: the smaller take key stays, whichever it is.
    const inA = records.filter((r) => r.id.startsWith('a/'));
    assert.equal(inA.length, 1);
    assert.ok(['a/a8', 'a/a9'].includes(inA[0].id));
    // report.html: the counts per component and example pairs with both thumbnails.
    const html = readFileSync(await writeReport(out), 'utf8');
    const section = html.slice(html.indexOf('<section id="near-duplicates">'));
    assert.match(section, /<th>near-duplicate-image<\/th><th>near-duplicate-text<\/th>/);
    assert.match(section, /<td>b<\/td><td class="n">3<\/td><td class="n">3<\/td>/);
    const pair = /<div class="pair"[\s\S]*?<\/div>/.exec(section)?.[0] ?? '';
    assert.equal(
      pair.match(/<img class="thumb"[^>]*src="data:image\/jpeg;base64,/g)?.length,
      2,
      pair.slice(0, 300),
    );
  });

  it('is byte-identical at any concurrency and partition size', async () => {
    const fine = await build('fine', { partitionRecords: 3 }, 4);
    assert.deepEqual(publishedHashes(fine.out), reference);
    const serial = await build('serial', { partitionRecords: 2, selectBucketRows: 3 }, 1);
    assert.deepEqual(publishedHashes(serial.out), reference);
  });

  it('resumes after a stop mid-bands: committed band jobs are kept, the others run, the output is the same', async () => {
    const ctx = makeBuildContext(spec, join(tmp, 'resume'));
    const stop = new AbortController();
    let bands = 0;
    await assert.rejects(
      runBuildInProcess(ctx, {
        concurrency: 1,
        signal: stop.signal,
        onEvent: (e) => {
          if (e.type === 'job-done' && e.stage === 'near-dedup-band' && ++bands === 5) stop.abort();
        },
      }),
      BuildInterruptedError,
    );
    const ran: boolean[] = [];
    await runBuildInProcess(ctx, {
      concurrency: 2,
      onEvent: (e) => {
        if (e.type === 'job-done' && e.stage === 'near-dedup-band') ran.push(e.ran);
      },
    });
    assert.equal(ran.length, 32);
    assert.equal(ran.filter((r) => !r).length, 5, 'the five committed bands are not run again');
    assert.deepEqual(publishedHashes(ctx.out), reference);
  });

  it('scope: within leaves copies in another component alone', async () => {
    const within = {
      ...spec,
      near_dedup: {
        ...(spec.near_dedup as NonNullable<MixtureSpec['near_dedup']>),
        scope: 'within' as const,
      },
    };
    const { manifest } = await build('within', {}, 2, within);
    const by = Object.fromEntries(manifest.components.map((c) => [c.name, c.counts]));
    assert.deepEqual(by.a.dropped, { 'near-duplicate-image': 1 });
    assert.deepEqual(by.b.dropped, { dedup: 1 });
  });
});

describe('decontaminate in a build', () => {
  it('drops samples whose image is near an evaluation image or whose question shares an n-gram, per set', async () => {
    const dirty = decontaminationSpec(tmp);
    const { out, manifest } = await build('decontam', {}, 2, dirty);
    assert.deepEqual(await verifyBuild(out), []);
    const by = Object.fromEntries(manifest.components.map((c) => [c.name, c.counts]));
    // a5 (o5) and its exact copy b5 are contaminated by e0's image; b6 by e1's question.
    assert.deepEqual(by.a.dropped, { 'contaminated:evalset': 1, 'near-duplicate-image': 1 });
    assert.deepEqual(by.b.dropped, {
      'contaminated:evalset': 2,
      'near-duplicate-image': 3,
      'near-duplicate-text': 3,
    });
    const again = await build('decontam-serial', { partitionRecords: 2 }, 1, dirty);
    assert.deepEqual(publishedHashes(again.out), publishedHashes(out));
  });
});
