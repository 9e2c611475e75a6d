// The one read → process → classify stream: a source's items in read order, each record through the per-sample
// pipeline with a bounded window in flight. Serves the build's ingest job and `mixforge sources read`.
import type { RawRecord } from '../core/schema.ts';
import type { ReadItem } from '../sources/types.ts';
import type { ProcessOutcome } from '../transforms/process.ts';
import { orderedMap } from './ordered-map.ts';

/**
 * What happened to each item, in read order: a reader's quarantine item becomes a `quarantine` outcome like a
 * record that failed processing, so consumers handle one union. `window` records are processed at once.
 * An item's `release` (items read with `recycle`) runs when the consumer asks for the outcome after its own: its
 * processing has settled by then (outcomes come only from settled promises), so a consumer that keeps nothing of an
 * outcome (image bytes included) past its loop iteration may read with `recycle`. An outcome the consumer does not
 * finish (a throw, a break) releases nothing.
 */
export async function* ingestStream(
  items: AsyncIterable<ReadItem>,
  process: (raw: RawRecord) => Promise<ProcessOutcome>,
  window: number,
): AsyncGenerator<ProcessOutcome> {
  const outcomes = orderedMap(items, window, async (item) => ({
    outcome:
      item.kind === 'record'
        ? await process(item.record)
        : ({ kind: 'quarantine', record: item.record } as const),
    release: item.release,
  }));
  for await (const { outcome, release } of outcomes) {
    yield outcome;
    release?.();
  }
}

/** The counter an outcome is dropped under (`quarantine:<reason>`, `filter:<name>`); undefined when kept. */
export function dropName(outcome: ProcessOutcome): string | undefined {
  if (outcome.kind === 'quarantine') return `quarantine:${outcome.record.reason}`;
  if (outcome.kind === 'filtered') return `filter:${outcome.filter}`;
  return undefined;
}
