import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Turn } from '../../core/schema.ts';
import { FilterOptionsSchema } from '../../transforms/component-options.ts';
import { countChars, estimateTokens, imageFilter, textFilter } from '../../transforms/filters.ts';

const turns = (...values: string[]): Turn[] =>
  values.map((value, i) => ({ from: i % 2 ? 'gpt' : 'human', value }));

function sample(source: string, images: number, ...values: string[]) {
  return { source, images: Array.from({ length: images }, () => ({})), conversations: turns(...values) };
}

describe('textFilter', () => {
  it('keeps everything without filters', () => {
    assert.equal(textFilter(sample('x', 0, 'q', 'a'), {}), undefined);
  });

  it('image_only drops text-only samples', () => {
    assert.equal(textFilter(sample('x', 0, 'q', 'a'), { image_only: true }), 'image_only');
    assert.equal(textFilter(sample('x', 1, '<image>\nq', 'a'), { image_only: true }), undefined);
    assert.equal(textFilter(sample('x', 0, 'q', 'a'), { image_only: false }), undefined);
  });

  it('max_images drops samples with more images', () => {
    assert.equal(textFilter(sample('x', 2, 'q', 'a'), { max_images: 1 }), 'max_images');
    assert.equal(textFilter(sample('x', 1, 'q', 'a'), { max_images: 1 }), undefined);
    assert.equal(textFilter(sample('x', 0, 'q', 'a'), { max_images: 0 }), undefined);
  });

  it('max_chars counts code points of the text without `<image>` tokens', () => {
    const s = sample('x', 1, '<image>\nabcd', '😀😀');
    assert.equal(
      countChars(s.conversations),
      'abcd'.length + 1 + 2 + 1,
      'newline left by the token, joiner, 2 emoji',
    );
    assert.equal(textFilter(s, { max_chars: 8 }), undefined);
    assert.equal(textFilter(s, { max_chars: 7 }), 'max_chars');
  });

  it('max_tokens uses the estimate', () => {
    // "Describe" (8 letters → 2) "this" (1) "chart" (2) "." (1) | "It" (1) "shows" (2) "42" (2 digits → 2) "%" (1)
    const s = sample('x', 1, '<image>\nDescribe this chart.', 'It shows 42%');
    assert.equal(estimateTokens(s.conversations), 12);
    assert.equal(textFilter(s, { max_tokens: 12 }), undefined);
    assert.equal(textFilter(s, { max_tokens: 11 }), 'max_tokens');
    assert.equal(estimateTokens(turns('漢字かな')), 4, 'one per CJK character');
    assert.equal(estimateTokens(turns('<image>')), 0);
  });

  it('include_sources / exclude_sources match names exactly or as globs', () => {
    const f = { include_sources: ['llava-onevision/chart*', 'cambrian/coco'] };
    assert.equal(textFilter(sample('llava-onevision/chartqa', 0, 'q', 'a'), f), undefined);
    assert.equal(textFilter(sample('cambrian/coco', 0, 'q', 'a'), f), undefined);
    assert.equal(textFilter(sample('cambrian/ocr', 0, 'q', 'a'), f), 'include_sources');
    const names = { exclude_sources: ['llava-onevision/CLEVR-Math(MathV360K)'] };
    assert.equal(
      textFilter(sample('llava-onevision/CLEVR-Math(MathV360K)', 0, 'q', 'a'), names),
      'exclude_sources',
    );
    assert.equal(textFilter(sample('llava-onevision/chartqa', 0, 'q', 'a'), names), undefined);
    assert.equal(
      textFilter(sample('llava-onevision/a', 0, 'q', 'a'), { exclude_sources: ['llava-onevision/**'] }),
      'exclude_sources',
    );
  });

  it('reports the first failing filter in a fixed order', () => {
    const s = sample('other', 0, 'q'.repeat(100), 'a');
    assert.equal(
      textFilter(s, { include_sources: ['x'], image_only: true, max_chars: 5 }),
      'include_sources',
    );
    assert.equal(textFilter(s, { image_only: true, max_chars: 5 }), 'image_only');
  });
});

describe('imageFilter', () => {
  it('min_side, max_side, max_aspect on any image', () => {
    const sizes = [
      { width: 640, height: 480 },
      { width: 100, height: 900 },
    ];
    assert.equal(imageFilter(sizes, {}), undefined);
    assert.equal(imageFilter(sizes, { min_side: 101 }), 'min_side');
    assert.equal(imageFilter(sizes, { min_side: 100 }), undefined);
    assert.equal(imageFilter(sizes, { max_side: 899 }), 'max_side');
    assert.equal(imageFilter(sizes, { max_side: 900 }), undefined);
    assert.equal(imageFilter(sizes, { max_aspect: 8.9 }), 'max_aspect');
    assert.equal(imageFilter(sizes, { max_aspect: 9 }), undefined);
    assert.equal(imageFilter([], { min_side: 10_000 }), undefined, 'text-only samples have no image to fail');
  });
});

describe('FilterOptionsSchema', () => {
  it('rejects unknown fields and bad values with the field path', () => {
    const unknown = FilterOptionsSchema.safeParse({ max_image: 1 });
    assert.equal(unknown.success, false);
    assert.match(JSON.stringify(unknown.error?.issues), /max_image/);
    const negative = FilterOptionsSchema.safeParse({ max_images: -1 });
    assert.deepEqual(negative.error?.issues[0].path, ['max_images']);
    assert.equal(FilterOptionsSchema.safeParse({ max_aspect: 0.5 }).success, false);
    assert.equal(FilterOptionsSchema.safeParse({ include_sources: [] }).success, false);
    assert.deepEqual(FilterOptionsSchema.parse({ image_only: true, max_images: 1 }), {
      image_only: true,
      max_images: 1,
    });
  });
});
