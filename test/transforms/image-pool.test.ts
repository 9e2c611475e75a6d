import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { type ImageOptions, ImageOptionsSchema } from '../../transforms/component-options.ts';
import { normaliseImage } from '../../transforms/image-normalise.ts';
import { createImagePool, ImagePoolError } from '../../transforms/image-pool.ts';
import { badCorpus, goodCorpus } from './image-corpus.ts';

const DEFAULTS: ImageOptions = ImageOptionsSchema.parse({});
let inputs: [string, Uint8Array][];

before(async () => {
  const good = await goodCorpus();
  const bad = await badCorpus();
  inputs = [...Object.entries(good), ...Object.entries(bad)];
});

describe('ImagePool', () => {
  it('gives exactly what normaliseImage gives in this thread, for every corpus image', async () => {
    const pool = createImagePool({ size: 2 });
    try {
      const pooled = await Promise.all(inputs.map(([, bytes]) => pool.normalise(bytes, DEFAULTS)));
      for (const [i, [name, bytes]] of inputs.entries()) {
        const inline = await normaliseImage(bytes, DEFAULTS);
        const got = pooled[i];
        assert.equal(got.ok, inline.ok, name);
        if (got.ok && inline.ok) {
          assert.equal(got.value.sha256, inline.value.sha256, name);
          assert.deepEqual(Buffer.from(got.value.image.bytes), Buffer.from(inline.value.image.bytes), name);
          assert.deepEqual({ ...got.value, image: null }, { ...inline.value, image: null }, name);
          if (got.value.changes.length === 0)
            assert.equal(got.value.image.bytes, bytes, `${name}: caller's bytes`);
        } else if (!got.ok && !inline.ok) {
          assert.equal(got.reason, inline.reason, name);
        }
      }
    } finally {
      await pool.close();
    }
  });

  it('leaves the caller its bytes (the copy sent to the worker is the one moved)', async () => {
    const pool = createImagePool({ size: 1 });
    try {
      const bytes = new Uint8Array(
        await sharp({ create: { width: 8, height: 8, channels: 4, background: '#f008' } })
          .png()
          .toBuffer(),
      );
      const before = Buffer.from(bytes);
      const o = await pool.normalise(bytes, DEFAULTS);
      assert.ok(o.ok);
      assert.equal(bytes.byteLength, before.length, 'not detached');
      assert.deepEqual(Buffer.from(bytes), before);
    } finally {
      await pool.close();
    }
  });

  it('runs many jobs over few workers and uses them all', async () => {
    const pool = createImagePool({ size: 2, perWorker: 1 });
    try {
      const jpeg = inputs.find(([n]) => n === 'jpeg')![1];
      const outs = await Promise.all(Array.from({ length: 30 }, () => pool.normalise(jpeg, DEFAULTS)));
      assert.ok(outs.every((o) => o.ok));
      assert.equal((pool as unknown as { slots: unknown[] }).slots.length, 2);
    } finally {
      await pool.close();
    }
  });

  it('a worker that dies fails only its own jobs; later jobs go to a fresh worker', async () => {
    const pool = createImagePool({ size: 1, perWorker: 1 });
    try {
      const jpeg = inputs.find(([n]) => n === 'jpeg')![1];
      assert.ok((await pool.normalise(jpeg, DEFAULTS)).ok);
      const slots = (pool as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }).slots;
      const doomed = pool.normalise(jpeg, DEFAULTS);
      const dying = slots[0].worker;
      await dying.terminate();
      await assert.rejects(
        doomed,
        (e: Error) => e instanceof ImagePoolError && /died|exited/.test(e.message),
      );
      const after = await pool.normalise(jpeg, DEFAULTS);
      assert.ok(after.ok);
      assert.notEqual(slots[0].worker, dying);
    } finally {
      await pool.close();
    }
  });

  it('close() rejects queued work and later calls, and can be called twice', async () => {
    const pool = createImagePool({ size: 1, perWorker: 1 });
    const jpeg = inputs.find(([n]) => n === 'wideJpeg')![1];
    const pending = Array.from({ length: 5 }, () => pool.normalise(jpeg, DEFAULTS));
    const settling = Promise.allSettled(pending);
    await pool.close();
    const settled = await settling;
    assert.ok(settled.every((s) => s.status === 'rejected' && s.reason instanceof ImagePoolError));
    await assert.rejects(pool.normalise(jpeg, DEFAULTS), /image pool is closed/);
    await pool.close();
  });
});

describe('ImagePool in a process of its own', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mixforge-pool-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const poolUrl = pathToFileURL(resolve('transforms/image-pool.ts')).href;
  const optionsUrl = pathToFileURL(resolve('transforms/component-options.ts')).href;
  const tsxApi = pathToFileURL(resolve('node_modules/tsx/dist/esm/api/index.mjs')).href;

  /** A script that uses a pool and never closes it: the process must still exit on its own. */
  function script(): string {
    // .mts: the temporary folder has no package.json saying ESM.
    const ts = join(dir, 'use-pool.mts');
    writeFileSync(
      ts,
      `import { createImagePool } from ${JSON.stringify(poolUrl)};
import { ImageOptionsSchema } from ${JSON.stringify(optionsUrl)};
const pool = createImagePool({ size: 2 });
const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');
const outs = await Promise.all([pool.normalise(png, ImageOptionsSchema.parse({})), pool.normalise(new Uint8Array(0), ImageOptionsSchema.parse({}))]);
const n: number = outs.length;
console.log(JSON.stringify(outs.map((o) => (o.ok ? o.value.image.format : o.reason))), n);
`,
    );
    return ts;
  }

  function check(r: ReturnType<typeof spawnSync>) {
    assert.equal(r.error, undefined, `did not exit on its own: ${r.error}`);
    assert.equal(r.status, 0, String(r.stderr));
    assert.equal(String(r.stdout).trim(), '["jpeg","image-empty"] 2');
  }

  it('under `node --import tsx`, exits without close() (idle workers do not hold it)', () => {
    check(spawnSync(process.execPath, ['--import', 'tsx', script()], { timeout: 60_000, encoding: 'utf8' }));
  });

  it('through tsx register() as bin/mixforge.js does, from another working directory', () => {
    const launcher = join(dir, 'launcher.mjs');
    writeFileSync(
      launcher,
      `import { register } from ${JSON.stringify(tsxApi)};\nregister();\nawait import(${JSON.stringify(pathToFileURL(script()).href)});\n`,
    );
    check(spawnSync(process.execPath, [launcher], { timeout: 60_000, encoding: 'utf8', cwd: tmpdir() }));
  });
});
