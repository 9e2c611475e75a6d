// Binds the per-sample transforms (transforms/process.ts) to a build: one shared worker-thread image pool per
// process, and per-component options taken from the mixture spec.
import type { RawRecord } from '../core/schema.ts';
import type { ComponentSpec, MixtureSpec } from '../manifests/spec-schema.ts';
import { ComponentTransformOptionsSchema } from '../transforms/component-options.ts';
import { createImagePool, type ImagePool } from '../transforms/image-pool.ts';
import { type ProcessOutcome, processRecord } from '../transforms/process.ts';

export type { ProcessOutcome };

let pool: ImagePool | undefined;

export interface RecordProcessor {
  /** Records in flight at once: enough to keep every image worker busy. */
  window: number;
  run(raw: RawRecord): Promise<ProcessOutcome>;
  close(): Promise<void>;
}

export async function makeRecordProcessor(
  spec: MixtureSpec,
  component: ComponentSpec,
): Promise<RecordProcessor> {
  pool ??= createImagePool();
  const images = pool;
  const options = ComponentTransformOptionsSchema.parse({
    transform: component.transform ?? 'none',
    filters: component.filters ?? {},
    images: spec.images,
    seed: spec.seed,
  });
  // Near-duplicate hashes only when the spec asks for them (the pool's options carry the flag to the workers).
  const nd = spec.near_dedup;
  const nearDup = nd ? { ngram: nd.text.ngram, of: nd.text.of, seed: spec.seed } : undefined;
  return {
    window: images.size * 4,
    run: (raw) =>
      processRecord(raw, {
        component: component.name,
        options,
        images,
        nearDup,
        hashImages: (spec.decontaminate?.length ?? 0) > 0,
      }),
    // The pool outlives one partition; shutdownRecordProcessing() ends it when the executor is done.
    close: async () => undefined,
  };
}

export async function shutdownRecordProcessing(): Promise<void> {
  const p = pool;
  pool = undefined;
  await p?.close();
}
