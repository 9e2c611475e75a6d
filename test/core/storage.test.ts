import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expandGlob, normaliseUri, storageFor } from '../../core/storage/index.ts';
import { isTransientError, withRetry } from '../../core/storage/retry.ts';
import { startS3, type TestS3 } from '../helpers/s3-server.ts';

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

function contract(name: string, root: () => string) {
  describe(`storage contract: ${name}`, () => {
    it('writes atomically, stats, reads ranges and whole objects', async () => {
      const uri = `${root()}/a/b/obj.bin`;
      const s = storageFor(uri);
      const data = new Uint8Array(1000).map((_, i) => i % 251);
      const info = await s.writeAtomic(uri, data);
      assert.equal(info.size, 1000);
      assert.deepEqual(Buffer.from(await s.readAll(uri)), Buffer.from(data));
      assert.deepEqual(Buffer.from(await s.readRange(uri, 10, 20)), Buffer.from(data.subarray(10, 20)));
      assert.equal((await s.readRange(uri, 5, 5)).byteLength, 0);
      const stream = await s.createReadStream(uri, { start: 990, end: 1000 });
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      assert.deepEqual(Buffer.concat(chunks), Buffer.from(data.subarray(990)));
      assert.equal(await s.stat(`${root()}/a/b/missing`), undefined);
    });

    it('lists recursively in order and expands globs', async () => {
      const s = storageFor(root());
      for (const n of ['x/2.json', 'x/1.json', 'x/sub/3.json', 'x/4.txt'])
        await s.writeAtomic(`${root()}/${n}`, n);
      const all = (await collect(s.list(`${root()}/x/`))).map((o) => o.uri.slice(root().length));
      assert.deepEqual(all, ['/x/1.json', '/x/2.json', '/x/4.txt', '/x/sub/3.json']);
      const globbed = (await expandGlob(`${root()}/x/*.json`)).map((o) => o.uri.slice(root().length));
      assert.deepEqual(globbed, ['/x/1.json', '/x/2.json']);
      const deep = (await expandGlob(`${root()}/x/**/*.json`)).map((o) => o.uri.slice(root().length));
      assert.deepEqual(deep, ['/x/1.json', '/x/2.json', '/x/sub/3.json']);
      await assert.rejects(expandGlob(`${root()}/x/none.json`), /no such file/);
      await s.writeAtomic(`${root()}/ov/CLEVR-Math(MathV360K)/train-0.parquet`, 'p');
      const parens = (await expandGlob(`${root()}/ov/CLEVR-Math(MathV360K)/*.parquet`)).map((o) =>
        o.uri.slice(root().length),
      );
      assert.deepEqual(
        parens,
        ['/ov/CLEVR-Math(MathV360K)/train-0.parquet'],
        'parentheses in a fixed folder are literal',
      );
    });

    it('writes large objects (multipart on S3) intact', async () => {
      const uri = `${root()}/big/blob.bin`;
      const s = storageFor(uri);
      const big = Buffer.alloc(20 * 1024 * 1024 + 123);
      for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) % 256;
      await s.writeAtomic(uri, big);
      const back = await s.readRange(uri, big.length - 5000, big.length);
      assert.deepEqual(Buffer.from(back), big.subarray(big.length - 5000));
      assert.equal((await s.stat(uri))?.size, big.length);
      await s.delete(uri);
      assert.equal(await s.stat(uri), undefined);
    });

    it('writes a list of chunks as their bytes in order (single PUT and multipart on S3)', async () => {
      const s = storageFor(root());
      for (const [name, size] of [
        ['small', 3000],
        ['big', 17 * 1024 * 1024],
      ] as const) {
        const whole = Buffer.alloc(size);
        for (let i = 0; i < size; i += 997) whole[i] = (i / 997) % 256;
        // Uneven chunks, one of them empty, views into one buffer as a shard's pages are.
        const cuts = [0, 1, 1, 700, Math.floor(size / 2), size];
        const chunks = cuts.slice(1).map((end, i) => whole.subarray(cuts[i], end));
        const uri = `${root()}/chunks/${name}.bin`;
        await s.writeAtomic(uri, chunks);
        assert.equal((await s.stat(uri))?.size, size);
        assert.ok(Buffer.from(await s.readRange(uri, 0, size)).equals(whole));
      }
    });
  });
}

let dir = '';
let s3: TestS3;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-storage-'));
  s3 = await startS3(['bucket']);
});
after(async () => {
  await s3.stop();
  await rm(dir, { recursive: true, force: true });
});

contract('local', () => dir);
contract('s3', () => 's3://bucket/prefix');

describe('uris', () => {
  it('normalises file:// and relative paths, rejects unknown schemes', () => {
    assert.equal(normaliseUri('file:///tmp/x'), '/tmp/x');
    assert.equal(normaliseUri('s3://b/k'), 's3://b/k');
    assert.throws(() => normaliseUri('http://example/x'), /unsupported URI scheme/);
  });
  it('leaves no temp files behind after local writes', async () => {
    const d = join(dir, 'tmpcheck');
    await mkdir(d, { recursive: true });
    await storageFor(d).writeAtomic(join(d, 'f'), 'x');
    await writeFile(join(d, 'g'), 'y');
    const names = (await collect(storageFor(d).list(d))).map((o) => o.uri);
    assert.deepEqual(names, [join(d, 'f'), join(d, 'g')]);
  });
});

describe('retry', () => {
  it('retries transient errors (5xx, throttling) and not others', async () => {
    let calls = 0;
    const r = await withRetry(
      'x',
      async () => {
        calls++;
        if (calls < 3) throw Object.assign(new Error('slow down'), { $metadata: { httpStatusCode: 503 } });
        return 42;
      },
      { attempts: 5, baseDelayMs: 1, maxDelayMs: 2 },
    );
    assert.equal(r, 42);
    assert.equal(calls, 3);
    let calls2 = 0;
    await assert.rejects(
      withRetry(
        'y',
        async () => {
          calls2++;
          throw Object.assign(new Error('denied'), { $metadata: { httpStatusCode: 403 } });
        },
        { attempts: 5, baseDelayMs: 1, maxDelayMs: 2 },
      ),
      /y failed: denied/,
    );
    assert.equal(calls2, 1);
    assert.equal(isTransientError({ name: 'SlowDown' }), true);
    assert.equal(isTransientError({ code: 'ECONNRESET' }), true);
  });
});
