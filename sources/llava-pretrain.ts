// LLaVA-Pretrain 558K (`liuhaotian/LLaVA-Pretrain`): one JSON array `blip_laion_cc_sbu_558k.json` of
// {id, image, conversations} whose images live in `images.zip` beside it (or an extracted folder).
import { dirnameUri, joinUri, storageFor } from '../core/storage/index.ts';
import { llavaJsonReader } from './json-family.ts';
import type { SourceReader } from './types.ts';

export const reader: SourceReader = llavaJsonReader({
  format: 'llava-pretrain',
  family: 'llava-pretrain',
  layout: 'json-array',
  requireImage: true,
  sourceOf: () => 'llava-pretrain',
  // The release ships images.zip next to the json; read it in place when it is there, else the folder.
  async defaultImageRoot(file) {
    const dir = dirnameUri(file.uri);
    const zip = joinUri(dir, 'images.zip');
    return (await storageFor(zip).stat(zip)) ? zip : dir;
  },
});
