import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { fromHalfBits, toHalfBits } from '../../../train-bridge/half-float.ts';
import { BatchLoader, captionOf } from '../../../train-bridge/loader/batches.ts';
import { StreamingDataset } from '../../../train-bridge/loader/dataset.ts';
import {
  channelAffine,
  channelTables,
  FASTVLM_PREPROCESS,
  type PreprocessOptions,
  squareGeometry,
  squareRgb,
  writePlanarF32,
} from '../../../train-bridge/loader/preprocess.ts';
import { PreprocessPool } from '../../../train-bridge/loader/preprocess-pool.ts';
import { collect, writeFixtureMixture } from './fixtures.ts';

let pool: PreprocessPool;
before(() => {
  pool = new PreprocessPool(2);
});
after(() => pool.close());

/** A lossless PNG with the given RGB pixels (row-major, HWC). */
function png(width: number, height: number, rgb: Uint8Array): Promise<Uint8Array> {
  return sharp(Buffer.from(rgb), { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer()
    .then((b) => new Uint8Array(b));
}

async function runOne(bytes: Uint8Array, opts: PreprocessOptions) {
  const R = opts.resolution;
  const per = { f32: 4, f16: 2, u8: 1 }[opts.dtype];
  const out = new SharedArrayBuffer(3 * R * R * per);
  const size = await pool.run(bytes, out, 0, opts);
  return { size, out };
}

const opts = (o: Partial<PreprocessOptions>): PreprocessOptions => ({ ...FASTVLM_PREPROCESS, ...o });

describe('preprocessing (pad to square with the mean colour, resize, scale)', () => {
  it('a 4×2 red image at 8×8: black padding rows above and below, exact values in every dtype', async () => {
    const red = new Uint8Array(4 * 2 * 3);
    for (let i = 0; i < 8; i++) red[i * 3] = 255;
    const bytes = await png(4, 2, red);
    const R = 8;
    const f32 = await runOne(bytes, opts({ resolution: R, kernel: 'nearest', dtype: 'f32' }));
    assert.deepEqual(f32.size, { width: 4, height: 2, decoder: 'sharp' });
    const f = new Float32Array(f32.out);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < R; y++)
        for (let x = 0; x < R; x++) {
          const inside = y >= 2 && y < 6;
          assert.equal(f[c * R * R + y * R + x], c === 0 && inside ? 1 : 0, `c${c} y${y} x${x}`);
        }
    const u8 = new Uint8Array(
      (await runOne(bytes, opts({ resolution: R, kernel: 'nearest', dtype: 'u8' }))).out,
    );
    for (let y = 0; y < R; y++)
      for (let x = 0; x < R; x++)
        assert.deepEqual(
          [...u8.subarray((y * R + x) * 3, (y * R + x) * 3 + 3)],
          y >= 2 && y < 6 ? [255, 0, 0] : [0, 0, 0],
        );
    const h = new Uint16Array(
      (await runOne(bytes, opts({ resolution: R, kernel: 'nearest', dtype: 'f16' }))).out,
    );
    assert.equal(h[3 * R + 1], 0x3c00);
    assert.equal(h[0], 0);
    assert.equal(h[R * R + 3 * R], 0);
  });

  it('matches an independent pad + nearest ×2 computation on random pixels, pad in the processor mean colour', async () => {
    const W = 6;
    const H = 3;
    const px = Uint8Array.from({ length: W * H * 3 }, (_, i) => (i * 97 + 13) % 256);
    const mean: [number, number, number] = [0.5, 0.25, 0.75];
    const std: [number, number, number] = [0.5, 0.25, 0.125];
    const padRgb = [128, 64, 191];
    const R = 12;
    const { out } = await runOne(await png(W, H, px), opts({ resolution: R, kernel: 'nearest', mean, std }));
    const f = new Float32Array(out);
    const { side, left, top } = squareGeometry(W, H);
    assert.deepEqual({ side, left, top }, { side: 6, left: 0, top: 1 });
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < R; y++)
        for (let x = 0; x < R; x++) {
          const sy = Math.floor(y / 2) - top;
          const sx = Math.floor(x / 2) - left;
          const v = sy >= 0 && sy < H ? px[(sy * W + sx) * 3 + c] : padRgb[c];
          const expected = (v / 255 - mean[c]) / std[c];
          assert.ok(
            Math.abs(f[c * R * R + y * R + x] - expected) <= 1e-6 * Math.max(1, Math.abs(expected)),
            `c${c} y${y} x${x}`,
          );
        }
  });

  it('cubic resize keeps a flat colour flat and the padding at the mean colour; tall images pad left and right', async () => {
    const W = 20;
    const H = 40;
    const px = new Uint8Array(W * H * 3);
    for (let i = 0; i < W * H; i++) px.set([10, 200, 30], i * 3);
    const R = 64;
    const u8 = new Uint8Array((await runOne(await png(W, H, px), opts({ resolution: R, dtype: 'u8' }))).out);
    const at = (x: number, y: number) => [...u8.subarray((y * R + x) * 3, (y * R + x) * 3 + 3)];
    // Image columns 10..29 of 40 → 16..47.9 of 64; the cubic kernel reaches 2 source pixels (3.2 output px).
    for (let y = 0; y < R; y++) {
      for (const x of [0, 5, 11, 52, 58, 63]) assert.deepEqual(at(x, y), [0, 0, 0], `pad x${x} y${y}`);
      for (const x of [21, 32, 43]) assert.deepEqual(at(x, y), [10, 200, 30], `image x${x} y${y}`);
    }
  });

  it('cubic with a coloured pad (CLIP mean): the pad keeps that colour, resized or already at R (no resize)', async () => {
    const mean: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
    const pad = [123, 117, 104];
    const px = new Uint8Array(20 * 8 * 3);
    for (let i = 0; i < 20 * 8; i++) px.set([250, 10, 60], i * 3);
    const bytes = await png(20, 8, px);
    // Image rows 6..13 of the 20² square. At 40² the cubic kernel reaches 2 source rows: rows 0..8 and 31..39 are
    // pad only, 17..22 image only.
    for (const [R, padRows, imageRows] of [
      [20, [0, 5, 14, 19], [6, 13]],
      [40, [0, 8, 31, 39], [17, 22]],
    ] as const) {
      const u8 = new Uint8Array((await runOne(bytes, opts({ resolution: R, mean, dtype: 'u8' }))).out);
      const at = (x: number, y: number) => [...u8.subarray((y * R + x) * 3, (y * R + x) * 3 + 3)];
      for (const y of padRows)
        for (const x of [0, R - 1]) assert.deepEqual(at(x, y), pad, `pad R${R} x${x} y${y}`);
      for (const y of imageRows) assert.deepEqual(at(R >> 1, y), [250, 10, 60], `image R${R} y${y}`);
    }
  });

  it('takes bytes that are a view into a larger buffer (a row group page) and leaves that buffer intact', async () => {
    const red = new Uint8Array(4 * 2 * 3);
    for (let i = 0; i < 8; i++) red[i * 3] = 255;
    const bytes = await png(4, 2, red);
    // The image in the middle of a bigger buffer, as hyparquet hands out BYTE_ARRAY values.
    const page = new Uint8Array(bytes.byteLength + 2000);
    page.set(bytes, 1000);
    const view = page.subarray(1000, 1000 + bytes.byteLength);
    const alone = await runOne(bytes, opts({ resolution: 8, kernel: 'nearest', dtype: 'u8' }));
    const fromView = await runOne(view, opts({ resolution: 8, kernel: 'nearest', dtype: 'u8' }));
    assert.deepEqual(new Uint8Array(fromView.out), new Uint8Array(alone.out));
    // Not transferred away (detached) and not changed: the page still serves the rest of the row group.
    assert.equal(page.byteLength, bytes.byteLength + 2000);
    assert.deepEqual(view, bytes);
  });

  it('greyscale, RGBA (alpha dropped, as PIL convert("RGB")) and 16-bit PNGs come out as their 8-bit RGB pixels', async () => {
    const w = 9;
    const h = 5;
    const grey = Uint8Array.from({ length: w * h }, (_, i) => (i * 37) % 256);
    const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => grey[Math.floor(i / 3)]);
    const rgba = Uint8Array.from({ length: w * h * 4 }, (_, i) =>
      i % 4 === 3 ? (i * 11) % 256 : grey[i >> 2],
    );
    const raw = (data: Uint8Array, channels: 1 | 3 | 4) =>
      sharp(Buffer.from(data), { raw: { width: w, height: h, channels } });
    const inputs = {
      rgb: await raw(rgb, 3).png().toBuffer(),
      grey: await raw(grey, 1).png().toBuffer(),
      rgba: await raw(rgba, 4).png().toBuffer(),
      sixteen: await raw(rgb, 3).toColourspace('rgb16').png().toBuffer(),
    };
    assert.equal((await sharp(inputs.sixteen).metadata()).depth, 'ushort');
    for (const kernel of ['nearest', 'cubic'] as const) {
      const want = Uint8Array.from(
        (await squareRgb(new Uint8Array(inputs.rgb), 16, [0, 0, 0], kernel)).pixels,
      );
      for (const [name, bytes] of Object.entries(inputs)) {
        const got = new Uint8Array(
          (await runOne(new Uint8Array(bytes), opts({ resolution: 16, kernel, dtype: 'u8' }))).out,
        );
        assert.deepEqual(got, want, `${name}, ${kernel}`);
      }
    }
  });

  it('f16 bits round to nearest and round-trip every table value', () => {
    assert.equal(toHalfBits(1), 0x3c00);
    assert.equal(toHalfBits(0.5), 0x3800);
    assert.equal(toHalfBits(-2), 0xc000);
    assert.equal(toHalfBits(65504), 0x7bff);
    assert.equal(toHalfBits(1e6), 0x7c00);
    assert.equal(toHalfBits(2 ** -24), 0x0001);
    for (const v of channelTables([0, 0, 0], [1, 1, 1])[0]) {
      const back = fromHalfBits(toHalfBits(v));
      assert.ok(Math.abs(back - v) <= Math.max(v * 2 ** -11, 2 ** -25), `${v} → ${back}`);
    }
  });
});

describe('BatchLoader', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mixforge-batches-'));
    await writeFixtureMixture(dir, { shards: [7, 6], images: true });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('collates samples in loader order with captions, tensors equal to the in-process reference, resumable state', async () => {
    const manifest = join(dir, 'manifest.json');
    const order = await collect(new StreamingDataset(manifest, { seed: 3 }));
    const R = 32;
    const loader = new BatchLoader(new StreamingDataset(manifest, { seed: 3 }), {
      batchSize: 5,
      resolution: R,
      dtype: 'f32',
      pool,
    });
    const batches = await collect(loader);
    assert.deepEqual(
      batches.map((b) => b.ids.length),
      [5, 5, 3],
    );
    assert.deepEqual(
      batches.flatMap((b) => b.ids),
      order.map((s) => s.id),
    );
    const tables = channelTables([0, 0, 0], [1, 1, 1]);
    for (const b of batches) {
      assert.deepEqual(b.images.shape, [b.ids.length, 3, R, R]);
      assert.deepEqual(
        [...b.imageSample],
        b.ids.map((_, i) => i),
      );
      b.ids.forEach((id, i) => {
        assert.equal(b.captions[i], `Caption of ${id}.`);
        assert.equal(b.captions[i], captionOf(b.conversations[i]));
      });
      for (const [i, id] of b.ids.entries()) {
        const s = order.find((x) => x.id === id)!;
        const ref = new Float32Array(3 * R * R);
        writePlanarF32(
          (await squareRgb(s.images[0].bytes, R, [0, 0, 0], 'cubic')).pixels,
          channelAffine([0, 0, 0], [1, 1, 1]),
          ref,
          0,
        );
        assert.deepEqual(b.images.data.subarray(i * 3 * R * R, (i + 1) * 3 * R * R), ref, id);
        assert.deepEqual(b.sourceSizes[i], { width: s.images[0].width, height: s.images[0].height });
      }
    }
    // The state after batch 1 resumes at batch 2.
    const resumed = new StreamingDataset(manifest, { seed: 3 });
    resumed.resume(batches[0].state);
    const tail = await collect(new BatchLoader(resumed, { batchSize: 5, resolution: R, dtype: 'u8', pool }));
    assert.deepEqual(
      tail.flatMap((b) => b.ids),
      order.slice(5).map((s) => s.id),
    );
    assert.deepEqual(tail[0].images.shape, [5, R, R, 3]);
    // u8 NHWC and f32 NCHW hold the same pixels.
    const f = batches[1].images.data as Float32Array;
    const u = tail[0].images.data as Uint8Array;
    for (let k = 0; k < 200; k++) {
      const i = (k * 7919) % (R * R);
      for (let c = 0; c < 3; c++) assert.equal(f[c * R * R + i], tables[c][u[i * 3 + c]]);
    }
  });
});

describe('BatchLoader reuseBuffers', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mixforge-reuse-'));
    await writeFixtureMixture(dir, { shards: [7, 6], images: true });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('hands out the same tensors while recycling buffers once the consumer moves on', async () => {
    const manifest = join(dir, 'manifest.json');
    const R = 16;
    const fresh = await collect(
      new BatchLoader(new StreamingDataset(manifest, { seed: 5 }), {
        batchSize: 2,
        resolution: R,
        dtype: 'f32',
        pool,
      }),
    );
    const seen = new Set<ArrayBufferLike>();
    let reused = 0;
    let k = 0;
    const loader = new BatchLoader(new StreamingDataset(manifest, { seed: 5 }), {
      batchSize: 2,
      resolution: R,
      dtype: 'f32',
      pool,
      prefetchBatches: 1,
      reuseBuffers: true,
    });
    for await (const b of loader) {
      // Compare before asking for the next batch: only then may this memory be reused.
      assert.deepEqual(b.ids, fresh[k].ids);
      assert.deepEqual(b.images.data, fresh[k].images.data, `batch ${k}`);
      if (seen.has(b.images.data.buffer)) reused++;
      seen.add(b.images.data.buffer);
      k++;
    }
    assert.equal(k, fresh.length);
    assert.ok(fresh.length >= 5, 'enough batches to cycle buffers');
    assert.ok(reused >= fresh.length - 4, `buffers reused ${reused} times over ${k} batches`);
  });
});

describe('cubic resize parity with the reference processor (PIL expand2square + BICUBIC)', () => {
  it('matches PIL within rounding on a smooth image, padding included', async () => {
    const w = 61;
    const h = 37;
    const R = 96;
    // Smooth content (blurred noise): what photos look like to a bicubic filter.
    const noise = new Uint8Array(w * h * 3).map((_, i) => (i * 7919) % 251);
    const bytes = new Uint8Array(
      await sharp(Buffer.from(noise), { raw: { width: w, height: h, channels: 3 } })
        .blur(2)
        .png()
        .toBuffer(),
    );
    const dir = await mkdtemp(join(tmpdir(), 'mixforge-pil-'));
    try {
      const file = join(dir, 'in.png');
      await writeFile(file, bytes);
      const script = [
        'from PIL import Image; import sys',
        `im = Image.open(${JSON.stringify(file)}).convert('RGB'); w, h = im.size; s = max(w, h)`,
        'sq = Image.new("RGB", (s, s), (0, 0, 0)); sq.paste(im, ((s - w) // 2, (s - h) // 2))',
        `sys.stdout.buffer.write(sq.resize((${R}, ${R}), Image.BICUBIC).tobytes())`,
      ].join('\n');
      const reference = execFileSync('/usr/bin/python3', ['-c', script]);
      const ours = (await squareRgb(bytes, R, [0, 0, 0], 'cubic')).pixels;
      assert.equal(ours.length, reference.length);
      let max = 0;
      let sum = 0;
      for (let i = 0; i < ours.length; i++) {
        const d = Math.abs(ours[i] - reference[i]);
        max = Math.max(max, d);
        sum += d;
      }
      assert.ok(max <= 3, `max |ours − PIL| = ${max}`);
      assert.ok(sum / ours.length < 0.5, `mean |ours − PIL| = ${sum / ours.length}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
