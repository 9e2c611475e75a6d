// Cambrian-7M (`nyu-visionx/Cambrian-10M`): jsonl of {id, image?, conversations (maybe a leading system turn),
// source?}; images in per-dataset folders under one root, or in `<dataset>.tar` archives beside them.
import { firstSegment, llavaJsonReader } from './json-family.ts';
import type { SourceReader } from './types.ts';

export const reader: SourceReader = llavaJsonReader({
  format: 'cambrian',
  family: 'cambrian',
  layout: 'jsonl',
  requireImage: false,
  sourceOf(r) {
    const source = r.meta.source;
    // Source names are file names in some releases (`lvis_instruct4v_220k.json`): the extension is noise.
    const name = typeof source === 'string' ? source.trim().replace(/\.jsonl?$/i, '') : '';
    if (name !== '') return `cambrian/${name}`;
    return `cambrian/${r.imagePaths.length > 0 ? firstSegment(r.imagePaths[0]) : 'text-only'}`;
  },
});
