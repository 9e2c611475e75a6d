// A build over the community-shape fixtures (Cambrian system turns, lmms-finetune system_prompt and video records,
// messages parquet with path-only images and derived ids, OneVision video rows): system turns and metadata in the
// shards as DuckDB reads them, exports carrying the system prompt, in = kept + Σ dropped, the report's reasons.
import assert from 'node:assert/strict';
import { createReadStream, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tar from 'tar-stream';
import { inspectBuild } from '../../manifests/inspect.ts';
import type { Manifest } from '../../manifests/manifest.ts';
import { renderReport } from '../../manifests/report.ts';
import { parseSpec } from '../../manifests/spec.ts';
import { makeBuildContext } from '../../pipelines/context.ts';
import { runBuildInProcess } from '../../pipelines/executor-inprocess.ts';
import { exportLlava, type LlavaRecord } from '../../train-bridge/export/llava.ts';
import { exportWebDataset, type WebDatasetJson } from '../../train-bridge/export/webdataset.ts';
import {
  CAMBRIAN_SYSTEM,
  llavaShapedRecords,
  messagesRecords,
  SYSTEM_PROMPT,
  writeFixtureImages,
  writeJsonAndJsonl,
  writeMessagesParquet,
  writeOneVisionParquet,
} from '../helpers/community-fixtures.ts';
import { duckdbQuery, sqlString } from '../helpers/duckdb-fixtures.ts';

let dir = '';
let out = '';
let manifest: Manifest;

const specText = (data: string) => `
name: community
seed: 7
output: { shard_rows: 4 }
components:
  - name: cambrian
    source: { format: cambrian, uris: ["${data}/lmms.jsonl"] }
  - name: messages
    source: { format: messages, uris: ["${data}/messages.parquet"], image_root: "${data}", ids: derive }
  - name: onevision
    source: { format: llava-onevision, uris: ["${data}/llava_wild.parquet"] }
`;

async function build(name: string): Promise<{ out: string; manifest: Manifest }> {
  const spec = parseSpec(specText(dir), { file: 'community.yaml', env: {} });
  const target = join(dir, name);
  return {
    out: target,
    manifest: await runBuildInProcess(makeBuildContext(spec, target), { concurrency: 2 }),
  };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-community-build-'));
  const images = await writeFixtureImages(dir);
  await writeJsonAndJsonl(dir, 'lmms', llavaShapedRecords());
  await writeJsonAndJsonl(dir, 'messages', messagesRecords());
  await writeMessagesParquet(join(dir, 'messages.parquet'), images);
  await writeOneVisionParquet(join(dir, 'llava_wild.parquet'), images);
  ({ out, manifest } = await build('out'));
});
after(() => rm(dir, { recursive: true, force: true }));

describe('build over community shapes', () => {
  it('accounts for every record per component; video records are counted as unsupported-modality', async () => {
    const by = Object.fromEntries(manifest.components.map((c) => [c.name, c.counts]));
    for (const [name, c] of Object.entries(by)) {
      const dropped = Object.values(c.dropped).reduce((a, b) => a + b, 0);
      assert.equal(c.in, c.kept + dropped, `${name}: in = kept + Σ dropped`);
    }
    assert.deepEqual(
      [by.cambrian.in, by.cambrian.kept, by.cambrian.dropped['quarantine:unsupported-modality']],
      [8, 3, 3],
    );
    assert.equal(by.cambrian.dropped['quarantine:missing-id'], 1);
    assert.equal(by.cambrian.dropped['quarantine:bad-roles'], 1);
    assert.deepEqual([by.messages.in, by.messages.kept], [6, 4]);
    assert.equal(by.messages.dropped['quarantine:unsupported-modality'], 1);
    assert.equal(by.messages.dropped['quarantine:unsafe-image-path'], 1);
    assert.deepEqual([by.onevision.in, by.onevision.kept], [4, 2]);
    assert.equal(by.onevision.dropped['quarantine:unsupported-modality'], 2);
    const html = await renderReport(manifest);
    assert.match(html, /quarantine:unsupported-modality 3/);
    assert.match(html, /quarantine:unsupported-modality 2/);
  });

  it('stores system turns and metadata in the shards, as DuckDB reads them', async () => {
    const rows = await duckdbQuery(
      `SELECT id, conversations[1]."from", conversations[1]."value", metadata
       FROM read_parquet(${sqlString(join(out, 'shards', '*.parquet'))}) ORDER BY id`,
    );
    const byId = new Map(rows.map((r) => [r[0] as string, r.slice(1)]));
    assert.deepEqual(byId.get('cambrian/l0'), ['system', SYSTEM_PROMPT, '{}']);
    assert.deepEqual(byId.get('cambrian/l7')?.slice(0, 2), ['system', CAMBRIAN_SYSTEM]);
    assert.deepEqual(byId.get('cambrian/l5'), [
      'human',
      '<image>\nDescribe it.',
      '{"data_source":"sharegpt4v","model":"gpt-4v"}',
    ]);
    assert.deepEqual(byId.get('messages/messages/0'), ['system', SYSTEM_PROMPT, '{"id":"m0"}']);
    assert.equal(byId.get('messages/messages/1')?.[2], '{"id":"m1","source_dataset":"alpaca"}');
    assert.deepEqual(byId.get('onevision/ov0')?.slice(0, 2), ['system', SYSTEM_PROMPT]);
    const license = await duckdbQuery(
      `SELECT json_extract_string(metadata, '$.license'), json_extract_string(metadata, '$.data_source')
       FROM read_parquet(${sqlString(join(out, 'shards', '*.parquet'))}) WHERE source = 'llava-onevision/llava_wild'`,
    );
    assert.deepEqual(license, [
      ['cc-by-4.0', 'llava_wild'],
      ['cc-by-4.0', 'llava_wild'],
    ]);
    assert.match(
      await inspectBuild(out, { samples: 20 }),
      /meta {3}\{"data_source":"sharegpt4v","model":"gpt-4v"\}/,
    );
  });

  it('is byte-identical on rebuild, metadata column included', async () => {
    const again = await build('again');
    const shards = readdirSync(join(out, 'shards'));
    assert.deepEqual(readdirSync(join(again.out, 'shards')), shards);
    for (const s of shards)
      assert.ok(readFileSync(join(out, 'shards', s)).equals(readFileSync(join(again.out, 'shards', s))), s);
  });

  it('the LLaVA export writes system_prompt beside the turns; the WebDataset export keeps the system turn', async () => {
    await exportLlava(out, { dest: join(dir, 'llava') });
    const records = JSON.parse(await readFile(join(dir, 'llava', 'mixture.json'), 'utf8')) as LlavaRecord[];
    const l0 = records.find((r) => r.id === 'cambrian/l0');
    assert.equal(l0?.system_prompt, SYSTEM_PROMPT);
    assert.deepEqual(Object.keys(l0 ?? {}), ['id', 'image', 'system_prompt', 'conversations']);
    assert.equal(l0?.conversations[0].from, 'human');
    assert.ok(records.every((r) => r.conversations.every((t) => t.from !== 'system')));
    assert.equal(records.filter((r) => r.system_prompt !== undefined).length, 4);

    const wds = await exportWebDataset(out, { dest: join(dir, 'wds') });
    const jsons: WebDatasetJson[] = [];
    for (const shard of wds.shards) {
      const extract = tar.extract();
      const reading = (async () => {
        for await (const entry of extract) {
          const chunks: Buffer[] = [];
          for await (const c of entry) chunks.push(c as Buffer);
          if (entry.header.name.endsWith('.json'))
            jsons.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as WebDatasetJson);
        }
      })();
      createReadStream(shard.startsWith('/') ? shard : join(dir, 'wds', shard)).pipe(extract);
      await reading;
    }
    const ov0 = jsons.find((j) => j.id === 'onevision/ov0');
    assert.deepEqual(ov0?.conversations[0], { from: 'system', value: SYSTEM_PROMPT });
  });
});
