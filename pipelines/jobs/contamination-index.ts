// contamination-index: reads the spec's evaluation sets (`decontaminate`) with the source readers once per build
// and writes the index ingest checks every training sample against: image perceptual hashes and question n-grams.
import { expandGlobs } from '../../core/storage/index.ts';
import { getReader } from '../../sources/registry.ts';
import {
  type ContaminationIndex,
  type EvalSetIndex,
  questionNgrams,
} from '../../transforms/contamination.ts';
import { normaliseRecord } from '../../transforms/normalise.ts';
import type { BuildContext } from '../context.ts';
import { buildLayout } from '../layout.ts';
import { defineStage } from '../stage.ts';
import { writeJson } from '../storage-json.ts';

export async function runContaminationIndex(
  ctx: BuildContext,
  signal?: AbortSignal,
): Promise<ContaminationIndex> {
  // Loaded when the job runs: the graph's list, which `status` and `cancel` read, stays without sharp.
  const { hashHex, perceptualHash } = await import('../../transforms/perceptual-hash.ts');
  const sets: EvalSetIndex[] = [];
  for (const e of ctx.spec.decontaminate ?? []) {
    const files = await expandGlobs(e.uris);
    if (files.length === 0)
      throw new Error(`decontaminate '${e.name}': no input matches ${e.uris.join(', ')}`);
    const reader = await getReader(e.format);
    const partitions = await reader.plan(files, { imageRoot: e.image_root, ids: e.ids });
    const images = new Set<string>();
    const ngrams = new Set<string>();
    let records = 0;
    let skipped = 0;
    for (const p of partitions)
      for await (const item of reader.read(p)) {
        signal?.throwIfAborted();
        records++;
        if (item.kind !== 'record') {
          skipped++;
          continue;
        }
        const normalised = normaliseRecord(item.record, `eval-${e.name}`);
        if ('reason' in normalised) {
          skipped++;
          continue;
        }
        try {
          for (const im of item.record.images) images.add(hashHex(await perceptualHash(im.bytes)));
        } catch {
          skipped++; // an evaluation image that does not decode cannot match anything
        }
        for (const g of questionNgrams(normalised.conversations, e.ngram)) ngrams.add(g);
      }
    sets.push({
      name: e.name,
      ngram: e.ngram,
      maxDistance: e.max_distance,
      records,
      skipped,
      images: [...images].sort(),
      ngrams: [...ngrams].sort(),
    });
  }
  const index: ContaminationIndex = { sets };
  await writeJson(buildLayout(ctx.out).contamination, index);
  return index;
}

export const contaminationIndex = defineStage({
  name: 'contamination-index',
  fanOut: 'one',
  outputs: async (ctx) => [buildLayout(ctx.out).contamination],
  run: (ctx, _n, signal) => runContaminationIndex(ctx, signal),
  summary: (s) => ({ sets: s.sets.length, images: s.sets.reduce((a, x) => a + x.images.length, 0) }),
});
