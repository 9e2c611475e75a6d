import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import yazl from 'yazl';
import { drawDemoImage } from '../../demo/images.ts';
import { reader } from '../../sources/llava-pretrain.ts';
import { jsonArrayText, readEverything, summary, uploadTree } from '../helpers/llava-json-fixtures.ts';
import { startS3, type TestS3 } from '../helpers/s3-server.ts';

let dir = '';
let s3: TestS3;
const images = new Map<string, Uint8Array>();
const N = 24;

function pathOf(i: number): string {
  const n = 4539375 + i * 7919;
  return `${String(Math.floor(n / 10000)).padStart(5, '0')}/${String(n).padStart(9, '0')}.jpg`;
}

function record(i: number) {
  return {
    id: String(4539375 + i * 7919).padStart(9, '0'),
    image: pathOf(i),
    conversations: [
      {
        from: 'human',
        value: i % 2 ? '<image>\nRender a clear and concise summary of the photo.' : 'Describe it.\n<image>',
      },
      { from: 'gpt', value: `a photo number ${i} with "quotes" and [brackets]` },
    ],
  };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-pretrain-'));
  s3 = await startS3(['pretrain']);
  // Release layout: the json and images.zip side by side; plus an extracted copy under images/.
  const zip = new yazl.ZipFile();
  for (let i = 0; i < N; i++) {
    const bytes = await drawDemoImage(`pretrain-${i}`, 'jpeg', { width: 48, height: 40 });
    images.set(pathOf(i), bytes);
    zip.addBuffer(Buffer.from(bytes), pathOf(i), { compress: i % 3 !== 0 });
    await mkdir(dirname(join(dir, 'extracted', 'images', pathOf(i))), { recursive: true });
    await writeFile(join(dir, 'extracted', 'images', pathOf(i)), bytes);
  }
  zip.end();
  await mkdir(join(dir, 'release'));
  await pipeline(zip.outputStream, createWriteStream(join(dir, 'release', 'images.zip')));
  const pieces = Array.from({ length: N }, (_, i) => JSON.stringify(record(i)));
  pieces.splice(5, 0, JSON.stringify({ id: 'noimg', conversations: record(0).conversations }));
  pieces.splice(9, 0, JSON.stringify({ ...record(1), id: 'gone', image: '99999/000000000.jpg' }));
  pieces.splice(13, 0, JSON.stringify({ ...record(2), id: 'trav', image: '../../etc/passwd' }));
  const text = jsonArrayText(pieces);
  await writeFile(join(dir, 'release', 'blip_laion_cc_sbu_558k.json'), text);
  await writeFile(join(dir, 'extracted', 'blip_laion_cc_sbu_558k.json'), text);
});
after(async () => {
  await s3.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('llava-pretrain reader', () => {
  it('reads images from images.zip beside the json by default', async () => {
    const r = await readEverything(reader, join(dir, 'release', 'blip_laion_cc_sbu_558k.json'));
    assert.equal(r.records.length, N);
    assert.equal(r.records.length + r.quarantined.length, N + 3);
    for (const [i, rec] of r.records.entries()) {
      assert.equal(rec.id, record(i).id);
      assert.equal(rec.source, 'llava-pretrain');
      assert.deepEqual(rec.conversations, record(i).conversations);
      assert.deepEqual(rec.meta, {});
      assert.equal(rec.images.length, 1);
      assert.equal(rec.images[0].path, pathOf(i));
      assert.deepEqual(Buffer.from(rec.images[0].bytes), Buffer.from(images.get(pathOf(i)) as Uint8Array));
    }
    assert.deepEqual(
      r.quarantined.map((q) => [q.id, q.reason, q.origin.replace(/.*#/, '#')]),
      [
        ['noimg', 'missing-field', '#item=5'],
        ['gone', 'missing-image', '#item=9'],
        ['trav', 'unsafe-image-path', '#item=13'],
      ],
    );
    assert.match(r.quarantined[1].message, /not a member of .*images\.zip/);
  });

  it('reads an extracted folder given as image root, the same records as the zip', async () => {
    const zipped = summary(await readEverything(reader, join(dir, 'release', 'blip_laion_cc_sbu_558k.json')));
    const folder = await readEverything(reader, join(dir, 'extracted', 'blip_laion_cc_sbu_558k.json'), {
      imageRoot: join(dir, 'extracted', 'images'),
      targetBytes: 700,
    });
    assert.ok(folder.partitions > 3);
    assert.deepEqual(
      summary(folder).map((l) => l.replace('/extracted/', '/release/')),
      zipped,
    );
  });

  it('reads the json and images.zip from S3 with any partitioning', async () => {
    await uploadTree(join(dir, 'release'), 's3://pretrain/LLaVA-Pretrain');
    const uri = 's3://pretrain/LLaVA-Pretrain/blip_laion_cc_sbu_558k.json';
    const whole = await readEverything(reader, uri);
    assert.equal(whole.records.length, N);
    assert.deepEqual(
      Buffer.from(whole.records[7].images[0].bytes),
      Buffer.from(images.get(pathOf(7)) as Uint8Array),
    );
    for (const targetBytes of [200, 1500]) {
      assert.deepEqual(summary(await readEverything(reader, uri, { targetBytes })), summary(whole));
    }
  });
});
