// The loader's libjpeg-turbo path (train-bridge/loader/turbojpeg.ts): exactly sharp's pixels and PIL's for the JPEGs it
// takes, null (so sharp decodes) for everything else, and really in use in the preprocessing workers.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { decodeJpegRgb, jpegDecoderName } from '../../../core/turbojpeg.ts';
import { grainyPhoto } from '../../../demo/images.ts';
import { FASTVLM_PREPROCESS } from '../../../train-bridge/loader/preprocess.ts';
import { PreprocessError, PreprocessPool } from '../../../train-bridge/loader/preprocess-pool.ts';

const NO_LIMIT = 1 << 30;

/** sharp's decode, as the loader's fallback does it. */
async function sharpRgb(bytes: Uint8Array): Promise<Buffer> {
  return sharp(bytes).removeAlpha().toColourspace('srgb').raw().toBuffer();
}

let dir: string;
/** JPEGs written by PIL (4:2:2 and odd sizes sharp cannot write) and their pixels as PIL decodes them. */
const pil: { name: string; bytes: Uint8Array; pixels: Buffer }[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-turbojpeg-'));
  const photo = await grainyPhoto({ name: 'turbojpeg-test', width: 203, height: 117, sigma: 10 });
  const png = join(dir, 'src.png');
  await photo.png().toFile(png);
  // subsampling 0/1/2 = 4:4:4 / 4:2:2 / 4:2:0; crops give odd sizes (MCU edges); mode L is greyscale.
  const variants: [string, string][] = [
    ['q90-420', 'im.save(o, "JPEG", quality=90, subsampling=2)'],
    ['q75-422', 'im.save(o, "JPEG", quality=75, subsampling=1)'],
    ['q95-444', 'im.save(o, "JPEG", quality=95, subsampling=0)'],
    ['progressive', 'im.save(o, "JPEG", quality=85, progressive=True)'],
    ['grey', 'im.convert("L").save(o, "JPEG", quality=90)'],
    ['odd-13x7', 'im.crop((3, 5, 16, 12)).save(o, "JPEG", quality=90, subsampling=2)'],
    ['one-pixel', 'im.crop((0, 0, 1, 1)).save(o, "JPEG", quality=90)'],
  ];
  const script = [
    'import sys; from PIL import Image',
    `im = Image.open(${JSON.stringify(png)}).convert("RGB")`,
    ...variants.map(([name, save]) => `o = ${JSON.stringify(join(dir, `${name}.jpg`))}; ${save}`),
    // PIL's own decode of each file, as LLaVA's processor reads it.
    ...variants.map(
      ([name]) =>
        `open(${JSON.stringify(join(dir, `${name}.rgb`))}, "wb").write(Image.open(${JSON.stringify(join(dir, `${name}.jpg`))}).convert("RGB").tobytes())`,
    ),
  ].join('\n');
  execFileSync('/usr/bin/python3', ['-c', script]);
  for (const [name] of variants)
    pil.push({
      name,
      bytes: new Uint8Array(await readFile(join(dir, `${name}.jpg`))),
      pixels: await readFile(join(dir, `${name}.rgb`)),
    });
});
after(() => rm(dir, { recursive: true, force: true }));

describe('JPEG decode through libjpeg-turbo', () => {
  it('is in use on this machine (scripts/setup-system.sh installs libturbojpeg0)', () => {
    assert.equal(jpegDecoderName(), 'libturbojpeg');
  });

  it('gives exactly the pixels of PIL and of sharp: 4:2:0, 4:2:2, 4:4:4, progressive, greyscale, odd sizes', async () => {
    for (const { name, bytes, pixels } of pil) {
      const ours = decodeJpegRgb(bytes, NO_LIMIT);
      assert.ok(ours, `${name}: decoded`);
      assert.ok(Buffer.from(ours.data).equals(pixels), `${name}: same bytes as PIL`);
      assert.ok(Buffer.from(ours.data).equals(await sharpRgb(bytes)), `${name}: same bytes as sharp`);
      const meta = await sharp(bytes).metadata();
      assert.deepEqual([ours.width, ours.height], [meta.width, meta.height], name);
    }
  });

  it('leaves to sharp what it would not decode as sharp does: ICC profiles, CMYK, other formats, damage, size limit', async () => {
    const photo = await grainyPhoto({ name: 'turbojpeg-refuse', width: 64, height: 48, sigma: 10 });
    const plain = new Uint8Array(await photo.clone().jpeg({ quality: 90 }).toBuffer());
    assert.ok(decodeJpegRgb(plain, NO_LIMIT), 'the plain JPEG itself decodes');
    const refused: [string, Uint8Array, number][] = [
      // sharp converts through an embedded profile; PIL ignores it: keep sharp's behaviour, whatever the decoder.
      ['ICC profile', new Uint8Array(await photo.clone().withIccProfile('p3').jpeg().toBuffer()), NO_LIMIT],
      ['CMYK', new Uint8Array(await photo.clone().toColourspace('cmyk').jpeg().toBuffer()), NO_LIMIT],
      ['PNG', new Uint8Array(await photo.clone().png().toBuffer()), NO_LIMIT],
      ['truncated', plain.subarray(0, Math.floor(plain.length * 0.6)), NO_LIMIT],
      ['header only', plain.subarray(0, 20), NO_LIMIT],
      ['over the pixel limit', plain, 64 * 48 - 1],
    ];
    for (const [what, bytes, limit] of refused) assert.equal(decodeJpegRgb(bytes, limit), null, what);
    assert.deepEqual((await sharp(refused[0][1]).metadata()).hasProfile, true, 'the ICC case has a profile');
  });
});

describe('the preprocessing pool', () => {
  let pool: PreprocessPool;
  before(() => {
    pool = new PreprocessPool(2);
  });
  after(() => pool.close());
  const R = 32;
  const run = (bytes: Uint8Array) =>
    pool.run(bytes, new SharedArrayBuffer(3 * R * R), 0, {
      ...FASTVLM_PREPROCESS,
      resolution: R,
      dtype: 'u8',
    });

  it('decodes plain JPEGs in its workers through libjpeg-turbo and the rest through sharp', async () => {
    for (const { name, bytes } of pil) assert.equal((await run(bytes)).decoder, 'libturbojpeg', name);
    const photo = await grainyPhoto({ name: 'turbojpeg-pool', width: 40, height: 30, sigma: 10 });
    assert.equal((await run(new Uint8Array(await photo.clone().png().toBuffer()))).decoder, 'sharp');
    const icc = new Uint8Array(await photo.clone().withIccProfile('p3').jpeg().toBuffer());
    assert.equal((await run(icc)).decoder, 'sharp');
  });

  it("fails a damaged JPEG with sharp's error, as before", async () => {
    const bytes = pil[0].bytes.subarray(0, Math.floor(pil[0].bytes.length * 0.6));
    await assert.rejects(
      run(bytes),
      (err: unknown) => err instanceof PreprocessError && /JPEG|jpeg/.test(String(err)),
    );
  });
});
