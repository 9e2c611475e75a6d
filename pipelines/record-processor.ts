// Binds the per-sample transforms (transforms/process.ts) to a build: images are normalised in this thread's sharp
// calls, which run on libuv's threadpool, and per-component options are taken from the mixture spec.
import { availableParallelism } from 'node:os';
import sharp from 'sharp';
import type { RawRecord } from '../core/schema.ts';
import type { ComponentSpec, MixtureSpec } from '../manifests/spec-schema.ts';
import { ComponentTransformOptionsSchema } from '../transforms/component-options.ts';
import { inlineImageNormaliser } from '../transforms/image-pool.ts';
import { type ProcessOutcome, processRecord } from '../transforms/process.ts';

export type { ProcessOutcome };

export interface RecordProcessor {
  /** Records in flight at once: enough to keep every threadpool thread decoding. */
  window: number;
  run(raw: RawRecord): Promise<ProcessOutcome>;
}

/**
 * sharp decodes and encodes off this thread already (libuv's threadpool: UV_THREADPOOL_SIZE threads, which the
 * launcher sets to the core count), so a build needs no worker threads of its own: they cost ~0.5 CPU-s each to
 * start (a Node environment, tsx, sharp) and a copy plus a message per image, for 0.30 → 0.53 of bare sharp per
 * CPU-second at 300 samples (docs/benchmarks.md, docs/decisions.md).
 */
function threads(): number {
  return Math.max(availableParallelism(), Number(process.env.UV_THREADPOOL_SIZE) || 4);
}

export async function makeRecordProcessor(
  spec: MixtureSpec,
  component: ComponentSpec,
): Promise<RecordProcessor> {
  // Every image is seen once: libvips' operation cache would only hold memory.
  sharp.cache(false);
  const options = ComponentTransformOptionsSchema.parse({
    transform: component.transform ?? 'none',
    filters: component.filters ?? {},
    images: spec.images,
    seed: spec.seed,
  });
  // Near-duplicate hashes only when the spec asks for them.
  const nd = spec.near_dedup;
  const nearDup = nd ? { ngram: nd.text.ngram, of: nd.text.of, seed: spec.seed } : undefined;
  return {
    window: threads() * 4,
    run: (raw) =>
      processRecord(raw, {
        component: component.name,
        options,
        images: inlineImageNormaliser,
        nearDup,
        hashImages: (spec.decontaminate?.length ?? 0) > 0,
      }),
  };
}
