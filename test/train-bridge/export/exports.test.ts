import assert from 'node:assert/strict';
import { createReadStream, existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import tar from 'tar-stream';
import { keyedHash64 } from '../../../core/keyed-hash.ts';
import type { Sample } from '../../../core/schema.ts';
import { exportLlava, imagePathBase, type LlavaRecord } from '../../../train-bridge/export/llava.ts';
import { mixtureSamples } from '../../../train-bridge/export/mixture-samples.ts';
import { exportWebDataset, type WebDatasetJson } from '../../../train-bridge/export/webdataset.ts';
import { collect, writeFixtureMixture } from '../loader/fixtures.ts';

let dir: string;
let stored: Sample[];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-export-'));
  // Shard 0: one image each; shard 1: text-only, two images, one image, …
  await writeFixtureMixture(join(dir, 'mix'), {
    shards: [5, 6],
    imageCount: (s, i) => (s === 0 ? 1 : i % 3),
  });
  stored = await collect(mixtureSamples(join(dir, 'mix')));
});
after(() => rm(dir, { recursive: true, force: true }));

describe('LLaVA export', () => {
  it('writes the JSON in stored order with ids, conversations and image paths whose files hold the bytes', async () => {
    const dest = join(dir, 'llava');
    const r = await exportLlava(join(dir, 'mix'), { dest });
    assert.equal(r.samples, 11);
    // Stored order: shard 0 then shard 1, rows by key inside each (written independently by the fixture).
    const byKey = (s: number, n: number) =>
      Array.from({ length: n }, (_, i) => `fixture/s${s}-${i}`).sort((a, b) => {
        const ka = keyedHash64(7, 'key', a);
        const kb = keyedHash64(7, 'key', b);
        return ka < kb ? -1 : ka > kb ? 1 : 0;
      });
    assert.deepEqual(
      stored.map((s) => s.id),
      [...byKey(0, 5), ...byKey(1, 6)],
    );
    assert.equal(
      r.images,
      stored.reduce((a, s) => a + s.images.length, 0),
    );
    const records = JSON.parse(await readFile(join(dest, 'mixture.json'), 'utf8')) as LlavaRecord[];
    assert.deepEqual(
      records.map((x) => x.id),
      stored.map((s) => s.id),
    );
    for (const [i, rec] of records.entries()) {
      const s = stored[i];
      assert.deepEqual(rec.conversations, s.conversations);
      const paths = rec.image === undefined ? [] : Array.isArray(rec.image) ? rec.image : [rec.image];
      assert.equal(paths.length, s.images.length, rec.id);
      if (s.images.length === 1) assert.equal(typeof rec.image, 'string');
      if (s.images.length === 0) assert.ok(!('image' in rec));
      for (const [k, p] of paths.entries()) {
        assert.ok(p.startsWith('images/'), p);
        assert.deepEqual(new Uint8Array(await readFile(join(dest, p))), s.images[k].bytes, p);
      }
    }
    assert.ok(!existsSync(join(dest, 'mixture.json.tmp')));
  });

  it('image path bases stay inside the folder and distinct ids stay distinct', () => {
    assert.equal(imagePathBase('llava-pretrain/GCC_train_000'), 'llava-pretrain/GCC_train_000');
    assert.match(imagePathBase('a/../b#r1'), /^a\/_\/b_r1-[0-9a-f]{8}$/);
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (a, b) => {
        for (const id of [a, b]) {
          const base = imagePathBase(id);
          assert.ok(!base.startsWith('/') && !normalize(base).startsWith('..'), base);
          assert.ok(!base.split('/').includes('..'), base);
        }
        if (a !== b) assert.notEqual(imagePathBase(a), imagePathBase(b));
      }),
    );
  });
});

async function readTar(path: string): Promise<{ name: string; body: Buffer }[]> {
  const extract = tar.extract();
  const out: { name: string; body: Buffer }[] = [];
  const reading = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      out.push({ name: entry.header.name, body: Buffer.concat(chunks) });
    }
  })();
  createReadStream(path).pipe(extract);
  await reading;
  return out;
}

describe('WebDataset export', () => {
  it('writes tar shards of <key>.<ext> + <key>.json in stored order, read back intact', async () => {
    const dest = join(dir, 'wds');
    const r = await exportWebDataset(join(dir, 'mix'), { dest, samplesPerShard: 4 });
    assert.equal(r.samples, 11);
    assert.deepEqual((await readdir(dest)).sort(), [
      'shard-000000.tar',
      'shard-000001.tar',
      'shard-000002.tar',
    ]);
    const entries: { name: string; body: Buffer }[] = [];
    for (const p of r.shards) entries.push(...(await readTar(p)));
    const keys = [...new Set(entries.map((e) => e.name.slice(0, e.name.indexOf('.'))))];
    assert.deepEqual(
      keys,
      Array.from({ length: 11 }, (_, i) => String(i).padStart(9, '0')),
    );
    for (const [i, key] of keys.entries()) {
      const s = stored[i];
      const members = entries.filter((e) => e.name.startsWith(`${key}.`));
      const json = JSON.parse(
        members.find((m) => m.name === `${key}.json`)!.body.toString('utf8'),
      ) as WebDatasetJson;
      assert.equal(json.id, s.id);
      assert.deepEqual(json.conversations, s.conversations);
      assert.equal(json.images.length, s.images.length);
      assert.equal(members.length, 1 + s.images.length);
      for (const [k, im] of json.images.entries()) {
        const ext = s.images[k].format === 'jpeg' ? 'jpg' : s.images[k].format;
        assert.equal(im.file, s.images.length === 1 ? `${key}.${ext}` : `${key}.${k}.${ext}`);
        assert.deepEqual(new Uint8Array(members.find((m) => m.name === im.file)!.body), s.images[k].bytes);
        assert.deepEqual([im.width, im.height], [s.images[k].width, s.images[k].height]);
      }
    }
  });
});
