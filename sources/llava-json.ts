// LLaVA-1.5 665K mix (`llava_v1_5_mix665k.json`): one JSON array of {id, image?, conversations, model?}, images
// in coco/ gqa/ ocr_vqa/ textvqa/ vg/ folders under one image root; text-only records have no image.
import { firstSegment, llavaJsonReader } from './json-family.ts';
import type { SourceReader } from './types.ts';

export const reader: SourceReader = llavaJsonReader({
  format: 'llava-json',
  family: 'llava-json',
  layout: 'json-array',
  requireImage: false,
  sourceOf: (r) => `llava-json/${r.imagePaths.length > 0 ? firstSegment(r.imagePaths[0]) : 'text-only'}`,
});
