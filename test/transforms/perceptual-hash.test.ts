import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { original } from '../../dev/near-dup-images.ts';
import { ImageOptionsSchema } from '../../transforms/component-options.ts';
import { normaliseImage } from '../../transforms/image-normalise.ts';
import {
  hammingDistance,
  hashFromDct,
  hashHex,
  lowFrequencyDct,
  perceptualHash,
} from '../../transforms/perceptual-hash.ts';

describe('perceptual hash', () => {
  it('hashFromDct sets the bits above the median of the 63 AC coefficients', () => {
    const c = Float64Array.from({ length: 64 }, (_, i) => (i === 0 ? 1000 : i));
    // AC values 1..63, median 32: bits 33..63 set (31 bits) plus the DC bit.
    const h = hashFromDct(c);
    assert.equal(h >> 63n, 1n);
    assert.equal(h & ((1n << 31n) - 1n), (1n << 31n) - 1n);
    assert.equal(hammingDistance(h, 0n), 32);
    assert.throws(() => lowFrequencyDct(new Uint8Array(10)), /expected 1024 pixels/);
  });

  it('a flat image has only DC energy; a left-to-right ramp puts it in the first horizontal frequency', () => {
    const flat = lowFrequencyDct(new Uint8Array(1024).fill(100));
    assert.ok(Math.abs(flat[0] - 100 * 1024) < 1e-6 && flat.subarray(1).every((v) => Math.abs(v) < 1e-6));
    const ramp = lowFrequencyDct(Uint8Array.from({ length: 1024 }, (_, i) => (i % 32) * 8));
    // Only the first row (no vertical frequency) carries energy, odd horizontal frequencies falling off.
    assert.ok(ramp.subarray(8).every((v) => Math.abs(v) < 1e-6));
    assert.ok(Math.abs(ramp[1]) > 5 * Math.abs(ramp[3]) && Math.abs(ramp[2]) < 1e-6);
  });

  it('edited copies stay within 10 bits; an unrelated picture does not', async () => {
    const a = await original(0);
    const h = await perceptualHash(a);
    const grey = await sharp(a).greyscale().jpeg({ quality: 60 }).toBuffer();
    const small = await sharp(a).resize(200).png().toBuffer();
    assert.ok(hammingDistance(h, await perceptualHash(grey)) <= 10);
    assert.ok(hammingDistance(h, await perceptualHash(small)) <= 10);
    assert.ok(hammingDistance(h, await perceptualHash(await original(1))) > 10);
  });

  it('ingest computes the same hash, kept or re-encoded, only when asked', async () => {
    const options = ImageOptionsSchema.parse({});
    const a = await original(3);
    const kept = await normaliseImage(a, { ...options, perceptualHash: true });
    assert.ok(kept.ok && kept.value.changes.length === 0);
    assert.equal(kept.value.perceptualHash, hashHex(await perceptualHash(a)));
    const plain = await normaliseImage(a, options);
    assert.ok(plain.ok && plain.value.perceptualHash === undefined);
    const resized = await normaliseImage(a, { ...options, max_side: 200, perceptualHash: true });
    assert.ok(resized.ok && resized.value.changes.includes('resize'));
    assert.equal(resized.value.perceptualHash, hashHex(await perceptualHash(resized.value.image.bytes)));
  });
});
