import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import sharp from 'sharp';
import { QUARANTINE_REASONS } from '../../core/quarantine.ts';
import type { RawRecord, RawTurn } from '../../core/schema.ts';
import {
  type ComponentTransformOptions,
  ComponentTransformOptionsSchema,
} from '../../transforms/component-options.ts';
import { dedupKey } from '../../transforms/dedup-key.ts';
import { inlineImageNormaliser } from '../../transforms/image-pool.ts';
import { countImageTokens } from '../../transforms/normalise.ts';
import { type ProcessContext, type ProcessOutcome, processRecord } from '../../transforms/process.ts';
import { roleProblem } from '../../transforms/validate.ts';
import { bombPng, exifRotatedJpeg } from './image-corpus.ts';

let jpeg: Buffer;
let png: Buffer;
let rotated: Buffer;

before(async () => {
  jpeg = await sharp({ create: { width: 60, height: 40, channels: 3, background: '#c83' } })
    .jpeg()
    .toBuffer();
  png = await sharp({ create: { width: 30, height: 20, channels: 4, background: '#38c8' } })
    .png()
    .toBuffer();
  rotated = await exifRotatedJpeg();
});

function ctx(options: Partial<Record<keyof ComponentTransformOptions, unknown>> = {}): ProcessContext {
  return {
    component: 'comp',
    options: ComponentTransformOptionsSchema.parse(options),
    images: inlineImageNormaliser,
  };
}

function rec(conversations: RawTurn[], images: Uint8Array[], id = 'r1'): RawRecord {
  return {
    id,
    source: 'llava-onevision/ai2d',
    origin: '/data/ov/ai2d.parquet#row=1',
    images: images.map((bytes, i) => ({ bytes, path: `img-${i}.png` })),
    conversations,
    meta: {},
  };
}

function expectKind<K extends ProcessOutcome['kind']>(
  o: ProcessOutcome,
  kind: K,
): Extract<ProcessOutcome, { kind: K }> {
  assert.equal(o.kind, kind, JSON.stringify(o.kind === 'quarantine' ? o.record : o.kind));
  return o as Extract<ProcessOutcome, { kind: K }>;
}

describe('processRecord', () => {
  it('keeps a good sample: normalised text, normalised images, digests and dedup key', async () => {
    const o = expectKind(
      await processRecord(
        rec(
          [
            { from: 'USER', value: ' Which is bigger? ' },
            { from: 'ASSISTANT', value: 'The left one.' },
          ],
          [jpeg, png],
        ),
        ctx(),
      ),
      'kept',
    );
    assert.equal(o.sample.id, 'comp/r1');
    assert.deepEqual(o.sample.conversations, [
      { from: 'human', value: '<image>\n<image>\nWhich is bigger?' },
      { from: 'gpt', value: 'The left one.' },
    ]);
    assert.equal(o.sample.images[0].bytes, jpeg, 'an already-normal JPEG keeps its bytes');
    assert.equal(o.sample.images[1].format, 'jpeg', 'the PNG with alpha is flattened and re-encoded');
    assert.deepEqual(o.imageChanges, [[], ['alpha']]);
    const digests = o.sample.images.map((im) => createHash('sha256').update(im.bytes).digest('hex'));
    assert.deepEqual(o.imageDigests, digests);
    assert.equal(o.dedupKey, dedupKey(digests, o.sample.conversations));
    assert.ok(!('key' in o.sample), 'the build assigns the key');
  });

  it('triplet samples dedup on the source text, not on the keyed question', async () => {
    const conv = [
      { from: 'human', value: '<image>\nDescribe.' },
      { from: 'gpt', value: 'A dense caption.' },
    ];
    const a = expectKind(
      await processRecord(rec(conv, [jpeg], 'a'), ctx({ transform: 'triplet', seed: 1 })),
      'kept',
    );
    const b = expectKind(
      await processRecord(rec(conv, [jpeg], 'b'), ctx({ transform: 'triplet', seed: 1 })),
      'kept',
    );
    assert.equal(a.dedupKey, b.dedupKey, 'same image and caption under two ids are duplicates');
    const plain = expectKind(await processRecord(rec(conv, [jpeg], 'a'), ctx()), 'kept');
    assert.equal(plain.dedupKey, a.dedupKey);
    const otherCaption = expectKind(
      await processRecord(rec([conv[0], { from: 'gpt', value: 'Another caption.' }], [jpeg], 'c'), ctx()),
      'kept',
    );
    assert.notEqual(otherCaption.dedupKey, a.dedupKey);
  });

  it('quarantines image failures with the image index and path, at stage image', async () => {
    const o = expectKind(
      await processRecord(
        rec(
          [
            { from: 'human', value: '<image>\n<image>\nQ' },
            { from: 'gpt', value: 'A' },
          ],
          [jpeg, bombPng(50_000, 50_000)],
        ),
        ctx(),
      ),
      'quarantine',
    );
    assert.equal(o.record.reason, 'image-too-large');
    assert.equal(o.record.stage, 'image');
    assert.match(o.record.message, /^image 1 \(img-1\.png\): /);
    assert.equal(o.record.id, 'comp/r1');
  });

  it('counts filtered samples under the filter name; text filters run before image decoding', async () => {
    const conv = [
      { from: 'human', value: '<image>\nQ' },
      { from: 'gpt', value: 'A' },
    ];
    const byImages = expectKind(
      await processRecord(rec(conv, [jpeg]), ctx({ filters: { max_chars: 1 } })),
      'filtered',
    );
    assert.deepEqual(
      [byImages.filter, byImages.id, byImages.source],
      ['max_chars', 'comp/r1', 'llava-onevision/ai2d'],
    );
    // A bomb image that a text filter drops is never decoded: filtered, not quarantined.
    const bomb = expectKind(
      await processRecord(
        rec(conv, [bombPng(50_000, 50_000)]),
        ctx({ filters: { exclude_sources: ['llava-*/**'] } }),
      ),
      'filtered',
    );
    assert.equal(bomb.filter, 'exclude_sources');
  });

  it('image-size filters see the upright source size (EXIF applied, before downscaling)', async () => {
    const conv = [
      { from: 'human', value: '<image>\nQ' },
      { from: 'gpt', value: 'A' },
    ];
    // Stored 40×20, upright 20×40: a max_side of 30 fails on the height, min_side 25 on the width.
    assert.equal(
      expectKind(await processRecord(rec(conv, [rotated]), ctx({ filters: { min_side: 25 } })), 'filtered')
        .filter,
      'min_side',
    );
    const kept = expectKind(
      await processRecord(
        rec(conv, [rotated]),
        ctx({ filters: { max_aspect: 2 }, images: { max_side: 16 } }),
      ),
      'kept',
    );
    assert.deepEqual([kept.sample.images[0].width, kept.sample.images[0].height], [8, 16]);
    assert.equal(
      expectKind(
        await processRecord(
          rec(conv, [rotated]),
          ctx({ filters: { max_side: 39 }, images: { max_side: 16 } }),
        ),
        'filtered',
      ).filter,
      'max_side',
      'the filter measured 40, not the downscaled 16',
    );
  });

  it('validation failures are quarantined at stage validate', async () => {
    const o = expectKind(
      await processRecord(
        rec(
          [
            { from: 'human', value: 'Q' },
            { from: 'human', value: 'Q again' },
          ],
          [],
        ),
        ctx(),
      ),
      'quarantine',
    );
    assert.deepEqual([o.record.reason, o.record.stage], ['bad-roles', 'validate']);
  });
});

// Arbitrary text mixing the things that break pipelines: image tokens, whitespace, CR, lone surrogates, U+FFFD,
// astral characters and plain unicode.
const nastyText = fc
  .array(
    fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.constantFrom(
        '<image>',
        '<image>\n',
        '\n<image>',
        ' ',
        '\r\n',
        '\t',
        '\uD800',
        '\uFFFD',
        '😀',
        '<image',
      ),
    ),
    { maxLength: 6 },
  )
  .map((parts) => parts.join(''));
const role = fc.oneof(
  fc.constantFrom('human', 'gpt', 'system', 'user', 'assistant', 'USER', 'GPT', 'Human'),
  fc.string({ maxLength: 8 }),
);
const anyConversation = fc.array(fc.record({ from: role, value: nastyText }), { maxLength: 6 });
// Well-formed turn structure with nasty text, so a good share of samples gets past validation.
const pairedConversation = fc
  .array(
    fc.tuple(
      fc.constantFrom('human', 'user', 'USER'),
      fc.oneof(nastyText, fc.string({ minLength: 1 })),
      fc.constantFrom('gpt', 'assistant', 'GPT'),
      fc.oneof(nastyText, fc.string({ minLength: 1 }), fc.constant('An answer.')),
    ),
    { minLength: 1, maxLength: 3 },
  )
  .map((pairs) =>
    pairs.flatMap(([h, q, g, a]) => [
      { from: h, value: q },
      { from: g, value: a },
    ]),
  );
const conversations = fc.oneof(anyConversation, { weight: 3, arbitrary: pairedConversation });

describe('property: transforms never throw and kept samples keep the <image> invariant', () => {
  let images: Uint8Array[];
  before(() => {
    images = [jpeg, png, new Uint8Array(0), new Uint8Array([0xff, 0xd8, 0xff, 0xe0])];
  });

  for (const transform of ['none', 'triplet'] as const) {
    it(`transform ${transform}`, async () => {
      const options = { transform, seed: 3, filters: {}, images: {} };
      let kept = 0;
      await fc.assert(
        fc.asyncProperty(
          conversations,
          // Mostly decodable images (0, 1), sometimes broken ones (2, 3); triplets mostly get their one image.
          fc.oneof(
            fc.array(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(0, 1) }, fc.constantFrom(2, 3)), {
              maxLength: 3,
            }),
            { weight: transform === 'triplet' ? 3 : 0, arbitrary: fc.constant([0]) },
          ),
          fc.string({ minLength: 1, maxLength: 12 }),
          async (convs, imageIdx, id) => {
            const record = rec(
              convs,
              imageIdx.map((i) => images[i]),
              id,
            );
            const o = await processRecord(record, ctx(options));
            if (o.kind === 'quarantine') {
              assert.ok((QUARANTINE_REASONS as readonly string[]).includes(o.record.reason));
              assert.equal(o.record.origin, record.origin);
              return;
            }
            assert.equal(o.kind, 'kept');
            if (o.kind !== 'kept') return;
            const s = o.sample;
            const tokens = s.conversations.reduce((n, t) => n + countImageTokens(t.value), 0);
            assert.equal(tokens, s.images.length, 'one <image> token per image');
            assert.equal(roleProblem(s.conversations), undefined);
            for (const t of s.conversations) {
              assert.equal(t.value, t.value.trim());
              assert.notEqual(t.value, '');
              assert.ok(!t.value.includes('\r'));
            }
            assert.equal(s.id, `comp/${id}`);
            if (transform === 'triplet') assert.equal(s.conversations.length, 2);
            kept++;
          },
        ),
        { numRuns: 300, seed: 20240611 },
      );
      assert.ok(
        kept >= 20,
        `only ${kept} of 300 generated samples were kept: the invariant was barely exercised`,
      );
    });
  }

  it('some generated samples are kept (the property is not vacuous)', async () => {
    let kept = 0;
    await fc.assert(
      fc.asyncProperty(nastyText, async (caption) => {
        const o = await processRecord(
          rec(
            [
              { from: 'user', value: 'Describe.' },
              { from: 'assistant', value: caption },
            ],
            [jpeg],
          ),
          ctx({ transform: 'triplet', seed: 9 }),
        );
        if (o.kind === 'kept') kept++;
      }),
      { numRuns: 100, seed: 7 },
    );
    assert.ok(kept > 30, `${kept} of 100 kept`);
  });
});
