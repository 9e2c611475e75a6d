// The shapes community fine-tuning files have, read by every reader they apply to, in json, jsonl and parquet:
// video records quarantined as unsupported-modality, system prompts kept as the leading system turn, extra fields
// kept as metadata, id-less records (missing-id, or numbered with ids: derive), messages, path-only parquet images,
// and parquet list encodings of different writers read alike. Expected counts live beside the generators.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getReader } from '../../sources/registry.ts';
import type { PlanOptions } from '../../sources/types.ts';
import {
  CAMBRIAN_SYSTEM,
  type Expected,
  LIST_ENCODINGS,
  LLAVA_SHAPED_EXPECTED,
  llavaShapedRecords,
  MESSAGES_EXPECTED,
  MESSAGES_PARQUET_NO_ROOT,
  messagesRecords,
  ONEVISION_EXPECTED,
  SYSTEM_PROMPT,
  writeFixtureImages,
  writeJsonAndJsonl,
  writeListEncodingParquet,
  writeMessagesParquet,
  writeOneVisionParquet,
} from '../helpers/community-fixtures.ts';
import { writeImageConversationParquet } from '../helpers/duckdb-fixtures.ts';
import { type ReadResult, readEverything } from '../helpers/llava-json-fixtures.ts';

let dir = '';
let images: Uint8Array[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-community-'));
  images = await writeFixtureImages(dir);
  await writeJsonAndJsonl(dir, 'lmms', llavaShapedRecords());
  await writeJsonAndJsonl(dir, 'messages', messagesRecords());
  await writeMessagesParquet(join(dir, 'messages.parquet'), images);
  await writeOneVisionParquet(join(dir, 'llava_wild.parquet'), images);
});
after(() => rm(dir, { recursive: true, force: true }));

async function read(format: string, file: string, options: PlanOptions = {}): Promise<ReadResult> {
  return readEverything(await getReader(format), join(dir, file), options);
}

function outcome(r: ReadResult): Expected {
  const dropped: Record<string, number> = {};
  for (const q of r.quarantined) dropped[q.reason] = (dropped[q.reason] ?? 0) + 1;
  return { kept: r.records.map((x) => x.id), dropped };
}

function record(r: ReadResult, id: string) {
  const found = r.records.find((x) => x.id === id);
  assert.ok(found, `record ${id}`);
  return found;
}

describe('community shapes: LLaVA-style records (lmms-finetune, Cambrian)', () => {
  for (const [format, file] of [
    ['llava-json', 'lmms.json'],
    ['cambrian', 'lmms.jsonl'],
  ] as const) {
    it(`${format} (${file}): video quarantined, system prompts kept, extra fields as metadata`, async () => {
      const r = await read(format, file);
      assert.deepEqual(outcome(r), LLAVA_SHAPED_EXPECTED);
      assert.deepEqual(record(r, 'l0').conversations[0], { from: 'system', value: SYSTEM_PROMPT });
      assert.equal(record(r, 'l0').conversations.length, 3);
      assert.deepEqual(record(r, 'l7').conversations[0], { from: 'system', value: CAMBRIAN_SYSTEM });
      assert.deepEqual(record(r, 'l5').meta, { data_source: 'sharegpt4v', model: 'gpt-4v' });
      const byId = new Map(r.quarantined.map((q) => [q.id ?? q.origin, q]));
      assert.match(byId.get('l1')?.message ?? '', /field 'video' is set/);
      assert.match(byId.get('l2')?.message ?? '', /field 'video' is set/);
      assert.match(byId.get('l3')?.message ?? '', /turn 0 holds a <video> token/);
      assert.match(byId.get('l6')?.message ?? '', /both a 'system_prompt' field and a leading system turn/);
      const noId = r.quarantined.find((q) => q.reason === 'missing-id');
      assert.match(noId?.message ?? '', /no `id` field \(set `ids: derive`/);
      assert.equal(noId?.id, undefined);
    });
  }

  it('llava-pretrain (images required) reads the same file: the image-less record is missing-field', async () => {
    const r = await read('llava-pretrain', 'lmms.json');
    assert.deepEqual(outcome(r), {
      kept: ['l0', 'l5', 'l7'],
      dropped: { 'unsupported-modality': 3, 'missing-id': 1, 'missing-field': 1 },
    });
    assert.deepEqual(record(r, 'l0').conversations[0], { from: 'system', value: SYSTEM_PROMPT });
  });

  it('ids: derive numbers every record by file and position; its own id goes to metadata', async () => {
    const array = await read('llava-json', 'lmms.json', { ids: 'derive' });
    assert.deepEqual(outcome(array).kept, ['lmms/0', 'lmms/4', 'lmms/5', 'lmms/7']);
    assert.equal(outcome(array).dropped['missing-id'], undefined);
    assert.deepEqual(record(array, 'lmms/5').meta, { id: 'l5', data_source: 'sharegpt4v', model: 'gpt-4v' });
    // jsonl positions are the 1-based line numbers of the origins.
    const lines = await read('cambrian', 'lmms.jsonl', { ids: 'derive' });
    assert.deepEqual(outcome(lines).kept, ['lmms/1', 'lmms/5', 'lmms/6', 'lmms/8']);
    assert.ok(lines.records.every((x) => x.origin.endsWith(`#line=${x.id.slice('lmms/'.length)}`)));
  });
});

describe('community shapes: messages (LLaMA-Factory, OpenAI style)', () => {
  for (const file of ['messages.json', 'messages.jsonl']) {
    it(`${file}: roles and content parts become turns, the system message the first turn`, async () => {
      const r = await read('messages', file);
      assert.deepEqual(outcome(r), MESSAGES_EXPECTED);
      assert.deepEqual(record(r, 'm0').conversations, [
        { from: 'system', value: SYSTEM_PROMPT },
        { from: 'user', value: '<image>Who is in the picture?' },
        { from: 'assistant', value: 'Nobody, it is a pattern.' },
      ]);
      assert.deepEqual(Buffer.from(record(r, 'm0').images[0].bytes), Buffer.from(images[0]));
      assert.equal(record(r, 'm2').conversations[0].value, '<image>\nWhat colour dominates?');
      assert.deepEqual(record(r, 'm1').meta, { source_dataset: 'alpaca' });
      assert.equal(record(r, 'm1').source, 'messages/text-only');
      assert.equal(record(r, 'm0').source, 'messages/images');
    });
  }

  it('messages.parquet: path-only images resolve against image_root; without it they are missing', async () => {
    const withRoot = await read('messages', 'messages.parquet', { imageRoot: dir });
    assert.deepEqual(outcome(withRoot), MESSAGES_EXPECTED);
    assert.deepEqual(Buffer.from(record(withRoot, 'm2').images[0].bytes), Buffer.from(images[1]));
    assert.equal(record(withRoot, 'm2').images[0].path, 'images/1.png');
    assert.deepEqual(record(withRoot, 'm0').conversations[0], { from: 'system', value: SYSTEM_PROMPT });
    assert.deepEqual(record(withRoot, 'm1').meta, { source_dataset: 'alpaca' });
    const escaping = withRoot.quarantined.find((q) => q.id === 'm5');
    assert.match(escaping?.message ?? '', /escape\.jpg/);

    const noRoot = await read('messages', 'messages.parquet');
    assert.deepEqual(outcome(noRoot), MESSAGES_PARQUET_NO_ROOT);
    assert.match(
      noRoot.quarantined.find((q) => q.id === 'm2')?.message ?? '',
      /field 'images\[0\]\.bytes' is null: image 'images\/1\.png' is not embedded in the file \(set the source's image_root/,
    );

    const derived = await read('messages', 'messages.parquet', { imageRoot: dir, ids: 'derive' });
    assert.deepEqual(outcome(derived).kept, ['messages/0', 'messages/1', 'messages/2', 'messages/4']);
  });

  it('a missing image file under the image root is a missing-image drop', async () => {
    const r = await read('messages', 'messages.parquet', { imageRoot: join(dir, 'clips') }).catch(
      (err: unknown) => err as Error,
    );
    // A root that does not exist fails the read as a whole; an existing root without the file drops the row.
    assert.ok(r instanceof Error && /clips/.test(r.message));
    const other = await mkdtemp(join(tmpdir(), 'mixforge-community-empty-'));
    try {
      const empty = await read('messages', 'messages.parquet', { imageRoot: other });
      assert.equal(empty.quarantined.find((q) => q.id === 'm2')?.reason, 'missing-image');
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});

describe('community shapes: LLaMA-Factory sharegpt records', () => {
  it('a `system` field becomes the system turn; `images` are paths; two system prompts are refused', async () => {
    const file = 'sharegpt.jsonl';
    const lines = [
      {
        conversations: [
          { from: 'human', value: '<image>What is this?' },
          { from: 'gpt', value: 'A pattern.' },
        ],
        system: SYSTEM_PROMPT,
        images: ['images/2.webp'],
      },
      {
        conversations: [
          { from: 'human', value: 'Hi' },
          { from: 'gpt', value: 'Hello' },
        ],
        system: 'One.',
        system_prompt: 'Two.',
      },
    ];
    await writeFile(join(dir, file), `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
    const r = await read('messages', file, { ids: 'derive' });
    assert.deepEqual(outcome(r), { kept: ['sharegpt/1'], dropped: { 'bad-roles': 1 } });
    assert.deepEqual(record(r, 'sharegpt/1').conversations[0], { from: 'system', value: SYSTEM_PROMPT });
    assert.deepEqual(Buffer.from(record(r, 'sharegpt/1').images[0].bytes), Buffer.from(images[2]));
    assert.deepEqual(record(r, 'sharegpt/1').meta, {});
    assert.match(r.quarantined[0].message, /both 'system_prompt' and 'system' fields/);
  });
});

describe('community shapes: LLaVA-OneVision rows', () => {
  it('video rows quarantined, subset from data_source, system_prompt and extra columns kept', async () => {
    const r = await read('llava-onevision', 'llava_wild.parquet');
    assert.deepEqual(outcome(r), ONEVISION_EXPECTED);
    assert.equal(record(r, 'ov0').source, 'llava-onevision/llava_wild');
    assert.deepEqual(record(r, 'ov0').conversations[0], { from: 'system', value: SYSTEM_PROMPT });
    assert.deepEqual(record(r, 'ov3').meta, { data_source: 'llava_wild', license: 'cc-by-4.0' });
    assert.deepEqual(
      r.quarantined.map((q) => [q.id, q.reason, q.source]),
      [
        ['ov1', 'unsupported-modality', 'llava-onevision/llava_wild'],
        ['ov2', 'unsupported-modality', 'llava-onevision/llava_wild'],
      ],
    );
  });
});

describe('community shapes: LLaVA-ReCap reads the same rows', () => {
  it('video rows quarantined, system_prompt and extra columns kept', async () => {
    const r = await read('llava-recap', 'llava_wild.parquet');
    assert.deepEqual(outcome(r), ONEVISION_EXPECTED);
    assert.deepEqual(record(r, 'ov0').conversations[0], { from: 'system', value: SYSTEM_PROMPT });
    assert.deepEqual(record(r, 'ov0').meta, { data_source: 'llava_wild', license: 'cc-by-4.0' });
  });
});

describe('parquet list encodings', () => {
  it('list/element, list/item, bag/array and a DuckDB file read to the same records', async () => {
    const rows = [0, 1, 2].map((i) => ({
      id: `enc${i}`,
      image: images[i],
      conversations: [
        { from: 'human', value: `<image>\nQuestion ${i}?` },
        { from: 'gpt', value: `Answer ${i}.` },
      ],
    }));
    const seen: string[] = [];
    for (const [name, names] of Object.entries(LIST_ENCODINGS)) {
      const file = `enc-${names.repeated}-${names.element}.parquet`;
      await writeListEncodingParquet(join(dir, file), names, rows);
      const r = await read('llava-onevision', file);
      assert.deepEqual(outcome(r), { kept: ['enc0', 'enc1', 'enc2'], dropped: {} }, name);
      seen.push(JSON.stringify(r.records.map((x) => [x.id, x.conversations, x.images[0].bytes.byteLength])));
    }
    await writeImageConversationParquet(
      join(dir, 'enc-duckdb.parquet'),
      rows.map((x) => ({ ...x, image: { bytes: x.image, path: null }, data_source: null })),
    );
    const duck = await read('llava-onevision', 'enc-duckdb.parquet');
    seen.push(JSON.stringify(duck.records.map((x) => [x.id, x.conversations, x.images[0].bytes.byteLength])));
    assert.equal(new Set(seen).size, 1, seen.join('\n'));
  });
});
