// The one read → process → classify stream: a source's items in read order, each record through the per-sample
// pipeline with a bounded window in flight. Serves the build's ingest job and `mixforge sources read`.
import type { RawRecord } from '../core/schema.ts';
import type { ReadItem } from '../sources/types.ts';
import type { ProcessOutcome } from '../transforms/process.ts';
import { orderedMap } from './ordered-map.ts';

/**
 * What happened to each item, in read order: a reader's quarantine item becomes a `quarantine` outcome like a
 * record that failed processing, so consumers handle one union. `window` records are processed at once.
 */
export function ingestStream(
  items: AsyncIterable<ReadItem>,
  process: (raw: RawRecord) => Promise<ProcessOutcome>,
  window: number,
): AsyncIterable<ProcessOutcome> {
  return orderedMap<ReadItem, ProcessOutcome>(items, window, async (item) =>
    item.kind === 'record' ? process(item.record) : { kind: 'quarantine', record: item.record },
  );
}

/** The counter an outcome is dropped under (`quarantine:<reason>`, `filter:<name>`); undefined when kept. */
export function dropName(outcome: ProcessOutcome): string | undefined {
  if (outcome.kind === 'quarantine') return `quarantine:${outcome.record.reason}`;
  if (outcome.kind === 'filtered') return `filter:${outcome.filter}`;
  return undefined;
}
