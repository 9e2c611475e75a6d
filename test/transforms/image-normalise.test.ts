import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { before, describe, it } from 'node:test';
import sharp from 'sharp';
import { jpegDecodesCleanly } from '../../core/turbojpeg.ts';
import { type ImageOptions, ImageOptionsSchema } from '../../transforms/component-options.ts';
import {
  type ImageOutcome,
  iccDescription,
  isSrgbProfile,
  looksTruncated,
  type NormalisedImage,
  normaliseImage,
} from '../../transforms/image-normalise.ts';
import {
  BLUE,
  badCorpus,
  cutJpeg,
  damaged,
  goodCorpus,
  jpegScanStart,
  near,
  noiseJpeg,
  pixelAt,
  RED,
} from './image-corpus.ts';

const DEFAULTS: ImageOptions = ImageOptionsSchema.parse({});
let good: Awaited<ReturnType<typeof goodCorpus>>;
let bad: Awaited<ReturnType<typeof badCorpus>>;

before(async () => {
  good = await goodCorpus();
  bad = await badCorpus();
});

function ok(o: ImageOutcome): NormalisedImage {
  if (!o.ok) assert.fail(`expected a normalised image, got ${o.reason}: ${o.message}`);
  return o.value;
}

/** What the stored file declares (sharp's raw output would convert to sRGB and hide it). */
async function decoded(bytes: Uint8Array) {
  const meta = await sharp(bytes).metadata();
  return { channels: meta.channels, space: meta.space, depth: meta.depth, hasAlpha: meta.hasAlpha };
}

describe('normaliseImage: bad inputs get distinct quarantine reasons', () => {
  const expected: Record<string, string> = {
    empty: 'image-empty',
    text: 'image-not-an-image',
    html: 'image-not-an-image',
    svg: 'image-unsupported-format',
    truncatedJpeg: 'image-truncated',
    headerOnlyJpeg: 'image-truncated',
    truncatedPng: 'image-truncated',
    corruptJpeg: 'image-corrupt',
    corruptPng: 'image-corrupt',
    bombPng: 'image-too-large',
  };
  // With the perceptual hash on, its thumbnail decode is the decode check: it must catch the same faults.
  for (const [name, reason] of Object.entries(expected))
    for (const perceptualHash of [false, true])
      it(`${name} → ${reason}${perceptualHash ? ' (perceptual hash on)' : ''}`, async () => {
        const o = await normaliseImage(bad[name as keyof typeof bad], { ...DEFAULTS, perceptualHash });
        assert.equal(o.ok, false, `${name} was accepted`);
        if (!o.ok) {
          assert.equal(o.reason, reason, `${name}: ${o.message}`);
          assert.ok(o.message.length > 0 && o.message.length <= 300);
        }
      });

  it('the pixel limit is the max_pixels option (a real 1200×1000 image over a 1M limit is a bomb)', async () => {
    const img = await noiseJpeg(1200, 1000);
    const o = await normaliseImage(img, { ...DEFAULTS, max_pixels: 1_000_000 });
    assert.deepEqual(o.ok ? 'accepted' : o.reason, 'image-too-large');
    ok(await normaliseImage(img, { ...DEFAULTS, max_pixels: 1_200_000 }));
  });

  it('animated input under the reject policy → image-animated (GIF and WebP)', async () => {
    for (const bytes of [good.animatedGif, good.animatedWebp]) {
      const o = await normaliseImage(bytes, { ...DEFAULTS, animated: 'reject' });
      assert.equal(o.ok ? 'accepted' : o.reason, 'image-animated');
    }
  });

  it('truncation is told from corruption by the missing end marker', () => {
    assert.equal(looksTruncated(bad.truncatedJpeg), true);
    assert.equal(looksTruncated(bad.truncatedPng), true);
    assert.equal(looksTruncated(bad.corruptJpeg), false);
    assert.equal(looksTruncated(bad.corruptPng), false);
    assert.equal(looksTruncated(good.jpeg), false);
    assert.equal(
      looksTruncated(Buffer.concat([good.jpeg, Buffer.alloc(16)])),
      false,
      'NUL padding after EOI',
    );
    assert.equal(looksTruncated(good.gif.subarray(0, good.gif.length - 1)), true);
  });
});

describe('normaliseImage: already-normal images keep their exact bytes', () => {
  for (const name of ['jpeg', 'webp', 'srgbIccJpeg', 'smallJpeg'] as const) {
    it(name, async () => {
      const input = good[name];
      const v = ok(await normaliseImage(input, DEFAULTS));
      assert.deepEqual(v.changes, []);
      assert.equal(v.image.bytes, input, 'the very same bytes, not a copy');
      assert.equal(v.sha256, createHash('sha256').update(input).digest('hex'));
      const meta = await sharp(input).metadata();
      assert.deepEqual(
        [v.image.width, v.image.height, v.image.format],
        [meta.width, meta.height, meta.format],
      );
    });
  }

  it('a small image is never upscaled', async () => {
    const v = ok(await normaliseImage(good.smallJpeg, { ...DEFAULTS, max_side: 2048 }));
    assert.deepEqual([v.image.width, v.image.height], [10, 8]);
  });
});

describe('normaliseImage: everything else becomes 8-bit sRGB, re-encoded once', () => {
  async function check(
    name: keyof Awaited<ReturnType<typeof goodCorpus>>,
    changes: string[],
    size: [number, number],
    colour: [number, number, number],
    tolerance = 12,
  ) {
    const v = ok(await normaliseImage(good[name], DEFAULTS));
    assert.deepEqual(v.changes, changes);
    assert.equal(v.image.format, 'jpeg');
    assert.deepEqual([v.image.width, v.image.height], size);
    const meta = await sharp(v.image.bytes).metadata();
    assert.deepEqual(
      [meta.width, meta.height, meta.format],
      [...size, 'jpeg'],
      'recorded size is the real size',
    );
    assert.deepEqual(await decoded(v.image.bytes), {
      channels: 3,
      space: 'srgb',
      depth: 'uchar',
      hasAlpha: false,
    });
    const px = await pixelAt(v.image.bytes, 1, 1);
    assert.ok(near(px, colour, tolerance), `${name}: pixel ${px} not near ${colour}`);
    assert.equal(v.sha256, createHash('sha256').update(v.image.bytes).digest('hex'));
    return v;
  }

  it('CMYK JPEG', async () => {
    await check('cmykJpeg', ['colour'], [64, 32], [RED.r, RED.g, RED.b], 40);
  });
  it('16-bit PNG', async () => {
    await check('png16', ['colour', 'depth'], [64, 32], [RED.r, RED.g, RED.b]);
  });
  it('palette PNG with alpha, flattened onto white', async () => {
    // 50% red over white: (200+255)/2, (30+255)/2, (10+255)/2.
    await check('palettePngAlpha', ['alpha', 'palette'], [64, 32], [228, 143, 133], 14);
  });
  it('greyscale JPEG becomes 3-channel sRGB with R = G = B = the grey level', async () => {
    const { data } = await sharp(good.greyJpeg).raw().toBuffer({ resolveWithObject: true });
    const grey = data[0];
    const meta = await sharp(good.greyJpeg).metadata();
    assert.deepEqual([meta.channels, meta.space], [1, 'b-w'], 'the input really is one grey channel');
    const v = await check('greyJpeg', ['colour'], [64, 32], [grey, grey, grey], 2);
    const [r, g, b] = await pixelAt(v.image.bytes, 5, 5);
    assert.ok(r === g && g === b, `grey pixel ${r},${g},${b}`);
  });
  it('a non-sRGB ICC profile (Display P3) is converted to sRGB', async () => {
    // The file holds P3 values (sharp converted sRGB red into P3 when writing it); read without the profile
    // they are not our red. Converted back to sRGB they are.
    const { data } = await sharp(good.p3Jpeg, { ignoreIcc: true })
      .raw()
      .toBuffer({ resolveWithObject: true });
    assert.ok(
      !near([data[0], data[1], data[2]], [RED.r, RED.g, RED.b], 12),
      `stored P3 values ${data.subarray(0, 3)}`,
    );
    const v = await check('p3Jpeg', ['icc'], [64, 32], [RED.r, RED.g, RED.b], 6);
    assert.equal((await sharp(v.image.bytes).metadata()).icc, undefined, 'no profile left: plain sRGB');
  });
  it('non-animated GIF (palette, alpha channel, not a stored format)', async () => {
    await check('gif', ['alpha', 'palette', 'format'], [64, 32], [RED.r, RED.g, RED.b], 20);
  });
  it('animated GIF: first frame', async () => {
    await check('animatedGif', ['alpha', 'palette', 'frames', 'format'], [32, 16], [RED.r, RED.g, RED.b], 20);
  });
  it('animated WebP: first frame', async () => {
    await check('animatedWebp', ['frames'], [32, 16], [RED.r, RED.g, RED.b]);
  });
  it('TIFF and AVIF are re-encoded', async () => {
    await check('tiff', ['format'], [64, 32], [RED.r, RED.g, RED.b]);
    await check('avif', ['format'], [64, 32], [RED.r, RED.g, RED.b], 20);
  });
  it('a side above max_side is downscaled, keeping the aspect ratio', async () => {
    await check('wideJpeg', ['resize'], [2048, 683], [RED.r, RED.g, RED.b]);
    const v = ok(await normaliseImage(good.wideJpeg, { ...DEFAULTS, max_side: 300 }));
    assert.deepEqual([v.image.width, v.image.height, v.sourceWidth, v.sourceHeight], [300, 100, 3000, 1000]);
  });

  it('EXIF orientation 6 is applied: width and height swap, and the pixels turn', async () => {
    // Stored 40×20 with red on the left; orientation 6 displays it turned 90° clockwise: 20×40, red on top.
    const v = await check('exifRotated', ['orientation'], [20, 40], [RED.r, RED.g, RED.b], 20);
    assert.deepEqual([v.sourceWidth, v.sourceHeight], [20, 40]);
    assert.ok(near(await pixelAt(v.image.bytes, 10, 5), [RED.r, RED.g, RED.b], 20), 'top is red');
    assert.ok(near(await pixelAt(v.image.bytes, 10, 34), [BLUE.r, BLUE.g, BLUE.b], 20), 'bottom is blue');
    assert.equal((await sharp(v.image.bytes).metadata()).orientation, undefined, 'no orientation tag left');
  });
});

describe('normaliseImage: encoder options', () => {
  it('jpeg_quality is used: q50 output is smaller than q95 and decodes to the same size', async () => {
    const src = await sharp(await noiseJpeg(300, 200))
      .png()
      .toBuffer();
    const q95 = ok(await normaliseImage(await sharp(src).toColourspace('rgb16').png().toBuffer(), DEFAULTS));
    const q50 = ok(
      await normaliseImage(await sharp(src).toColourspace('rgb16').png().toBuffer(), {
        ...DEFAULTS,
        jpeg_quality: 50,
      }),
    );
    assert.ok(
      q50.image.bytes.length < q95.image.bytes.length * 0.8,
      `${q50.image.bytes.length} vs ${q95.image.bytes.length}`,
    );
    assert.deepEqual([q50.image.width, q50.image.height], [300, 200]);
  });

  it('reencode_format png writes lossless PNG', async () => {
    const v = ok(await normaliseImage(good.png16, { ...DEFAULTS, reencode_format: 'png' }));
    assert.equal(v.image.format, 'png');
    assert.deepEqual(await decoded(v.image.bytes), {
      channels: 3,
      space: 'srgb',
      depth: 'uchar',
      hasAlpha: false,
    });
    assert.deepEqual(await pixelAt(v.image.bytes, 3, 3), [RED.r, RED.g, RED.b]);
  });

  it('is deterministic: the same input gives byte-identical output', async () => {
    const a = ok(await normaliseImage(good.cmykJpeg, DEFAULTS));
    const b = ok(await normaliseImage(good.cmykJpeg, DEFAULTS));
    assert.equal(a.sha256, b.sha256);
  });
});

describe('ICC profile description', () => {
  it('reads v4 mluc descriptions and recognises sRGB', async () => {
    const srgb = (await sharp(good.srgbIccJpeg).metadata()).icc!;
    const p3 = (await sharp(good.p3Jpeg).metadata()).icc!;
    assert.match(iccDescription(srgb) ?? '', /sRGB/);
    assert.match(iccDescription(p3) ?? '', /P3/);
    assert.equal(isSrgbProfile(srgb), true);
    assert.equal(isSrgbProfile(p3), false);
    assert.equal(isSrgbProfile(new Uint8Array(10)), false);
  });

  it('reads v2 desc descriptions', () => {
    const text = 'sRGB IEC61966-2.1';
    const tag = Buffer.alloc(12 + text.length + 1);
    tag.write('desc', 0, 'latin1');
    tag.writeUInt32BE(text.length + 1, 8);
    tag.write(text, 12, 'latin1');
    const header = Buffer.alloc(132 + 12);
    header.writeUInt32BE(1, 128);
    header.write('desc', 132, 'latin1');
    header.writeUInt32BE(144, 136);
    header.writeUInt32BE(tag.length, 140);
    assert.equal(iccDescription(Buffer.concat([header, tag])), text);
  });
});

describe('images.fail_on', () => {
  it('quarantines a JPEG the decoder warns about by default, and keeps it with fail_on: error', async () => {
    const jpg = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#884422' } })
      .jpeg()
      .toBuffer();
    const sos = jpg.indexOf(Buffer.from([0xff, 0xda]));
    // Junk before the scan: libjpeg warns "extraneous bytes before marker 0xda" and decodes the image intact.
    const warned = new Uint8Array(
      Buffer.concat([jpg.subarray(0, sos), Buffer.from([1, 2, 3]), jpg.subarray(sos)]),
    );
    const strict = await normaliseImage(warned, DEFAULTS);
    assert.equal(strict.ok, false);
    if (!strict.ok) assert.equal(strict.reason, 'image-corrupt');
    const lenient = await normaliseImage(warned, ImageOptionsSchema.parse({ fail_on: 'error' }));
    assert.equal(lenient.ok, true);
    if (lenient.ok) assert.deepEqual([lenient.value.image.width, lenient.value.image.height], [64, 48]);
  });
});

describe('quarantine outcomes under concurrency', () => {
  it('are the same when damaged images fail at the same time as when they fail one by one', async () => {
    // JPEGs cut short (the end marker put back) and PNGs with flipped data bytes: each fails to decode, with
    // libvips' message; many at once is how a build meets them.
    const bad: Uint8Array[] = [];
    for (let i = 0; i < 12; i++) {
      bad.push(cutJpeg(await noiseJpeg(80 + i * 9, 60 + i * 5, 20 + i), 0.2 + 0.05 * i));
    }
    for (let i = 0; i < 4; i++) {
      const png = Buffer.from(
        await sharp(await noiseJpeg(64, 40 + i, 7 + i))
          .png()
          .toBuffer(),
      );
      const at = png.indexOf('IDAT', 8, 'latin1') + 40 + i * 13;
      for (let k = at; k < at + 16; k++) png[k] ^= 0x5a;
      bad.push(png);
    }
    const alone = [];
    for (const b of bad) alone.push(await normaliseImage(b, DEFAULTS));
    assert.ok(
      alone.every((o) => !o.ok),
      'every damaged image fails',
    );
    for (let round = 0; round < 3; round++)
      assert.deepEqual(
        await Promise.all(bad.map((b) => normaliseImage(b, DEFAULTS))),
        alone,
        `round ${round}`,
      );
  });
});

describe('the decode check (originals kept)', () => {
  /** A full decode to raw pixels under the same options: what the check must agree with. */
  async function fullDecodeFails(bytes: Uint8Array): Promise<boolean> {
    return sharp(bytes, { failOn: DEFAULTS.fail_on, limitInputPixels: DEFAULTS.max_pixels })
      .raw()
      .toBuffer()
      .then(
        () => false,
        () => true,
      );
  }

  it('rejects exactly what a full decode rejects, wherever the damage is (last rows included)', async () => {
    const jpeg = await sharp({ create: { width: 96, height: 200, channels: 3, background: '#336699' } })
      .jpeg({ quality: 90 })
      .toBuffer();
    const png = await sharp(await noiseJpeg(64, 120, 5))
      .png()
      .toBuffer();
    const webp = await sharp(png).webp({ quality: 80 }).toBuffer();
    const cases: [string, Uint8Array, number][] = [
      ['jpeg', jpeg, jpegScanStart(jpeg)],
      ['png', png, png.indexOf('IDAT', 8, 'latin1') + 8],
      ['webp', webp, 40],
    ];
    let rejected = 0;
    for (const [format, bytes, headerEnd] of cases)
      for (const at of [0.1, 0.5, 0.9, 0.97, 0.995]) {
        const bad = damaged(bytes, headerEnd, at, 24);
        const o = await normaliseImage(bad, DEFAULTS);
        const full = await fullDecodeFails(bad);
        assert.equal(!o.ok, full, `${format} damaged at ${at}: check ${o.ok ? 'kept' : 'rejected'} it`);
        if (full) rejected++;
      }
    // The cases must exercise rejection, not only agree on keeping everything.
    assert.ok(rejected >= 5, `only ${rejected} damaged images failed to decode`);
  });

  it("libjpeg-turbo's 1/8-scale check never passes a JPEG that sharp's full decode rejects", async () => {
    const flat = await sharp({ create: { width: 96, height: 200, channels: 3, background: '#336699' } })
      .jpeg({ quality: 90 })
      .toBuffer();
    const noisy = await noiseJpeg(203, 117, 9);
    const progressive = await sharp(noisy).jpeg({ quality: 85, progressive: true }).toBuffer();
    const grey = await sharp(noisy).greyscale().jpeg({ quality: 90 }).toBuffer();
    for (const clean of [flat, noisy, progressive, grey])
      assert.equal(await jpegDecodesCleanly(clean, DEFAULTS.max_pixels), true, 'an undamaged JPEG passes');
    let passed = 0;
    let sentBack = 0;
    for (const [name, bytes] of Object.entries({ flat, noisy, progressive, grey })) {
      const headerEnd = jpegScanStart(bytes);
      for (let k = 0; k < 24; k++)
        for (const n of [1, 24]) {
          const at = (k + 0.5) / 24;
          const bad = damaged(bytes, headerEnd, at, n);
          const clean = await jpegDecodesCleanly(bad, DEFAULTS.max_pixels);
          const full = await fullDecodeFails(bad);
          // Passing here keeps the image without asking sharp: sharp must agree. A refusal goes to sharp.
          if (clean)
            assert.equal(full, false, `${name} damaged at ${at.toFixed(3)} × ${n}: passed, sharp rejects it`);
          if (clean) passed++;
          else sentBack++;
          const o = await normaliseImage(bad, DEFAULTS);
          assert.equal(
            !o.ok,
            full,
            `${name} damaged at ${at.toFixed(3)} × ${n}: normaliseImage disagrees with sharp`,
          );
        }
    }
    // Both outcomes occur: single flipped bits often land in bits that still decode.
    assert.ok(passed >= 5 && sentBack >= 20, `passed ${passed}, sent back to sharp ${sentBack}`);
    assert.equal(await jpegDecodesCleanly(flat, 96 * 200 - 1), false, 'over the pixel limit: sharp decides');
  });
});
