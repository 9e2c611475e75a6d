// The shared read → process → classify stream: read order kept whatever order processing finishes in, reader
// quarantines passed through as outcomes, and the counter each outcome is dropped under.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RawRecord } from '../../core/schema.ts';
import { dropName, ingestStream } from '../../pipelines/ingest-stream.ts';
import type { ReadItem } from '../../sources/types.ts';
import type { ProcessOutcome } from '../../transforms/process.ts';

const raw = (id: string): RawRecord => ({
  id,
  source: 's',
  origin: `f#line=${id}`,
  images: [],
  conversations: [],
  meta: {},
});

async function* items(): AsyncGenerator<ReadItem> {
  for (let i = 0; i < 12; i++) {
    if (i % 4 === 3) {
      yield {
        kind: 'quarantine',
        record: { origin: `f#line=${i}`, source: 's', stage: 'read', reason: 'missing-id', message: 'no id' },
      };
    } else yield { kind: 'record', record: raw(String(i)) };
  }
}

describe('ingest stream', () => {
  it('yields one outcome per item in read order, reader quarantines included', async () => {
    let inFlight = 0;
    let most = 0;
    const process = async (r: RawRecord): Promise<ProcessOutcome> => {
      inFlight++;
      most = Math.max(most, inFlight);
      // Later records finish first: the stream must still yield in read order.
      await new Promise((done) => setTimeout(done, 12 - Number(r.id)));
      inFlight--;
      return Number(r.id) % 2 === 0
        ? { kind: 'filtered', filter: 'max_chars', id: r.id, source: r.source, origin: r.origin }
        : {
            kind: 'quarantine',
            record: {
              origin: r.origin,
              source: r.source,
              stage: 'validate',
              reason: 'bad-roles',
              message: 'x',
              id: r.id,
            },
          };
    };
    const out: string[] = [];
    for await (const o of ingestStream(items(), process, 3)) out.push(dropName(o) ?? 'kept');
    assert.deepEqual(out, [
      'filter:max_chars',
      'quarantine:bad-roles',
      'filter:max_chars',
      'quarantine:missing-id',
      'filter:max_chars',
      'quarantine:bad-roles',
      'filter:max_chars',
      'quarantine:missing-id',
      'filter:max_chars',
      'quarantine:bad-roles',
      'filter:max_chars',
      'quarantine:missing-id',
    ]);
    assert.ok(most <= 3, `at most the window in flight, saw ${most}`);
  });

  it('releases an item only once the consumer is done with its outcome; an unfinished one never', async () => {
    const log: string[] = [];
    async function* lent(): AsyncGenerator<ReadItem> {
      for await (const item of items()) {
        const at = item.record.origin.split('=')[1];
        yield { ...item, release: () => log.push(`release ${at}`) };
      }
    }
    const process = async (r: RawRecord): Promise<ProcessOutcome> => {
      await new Promise((done) => setTimeout(done, 12 - Number(r.id)));
      return { kind: 'filtered', filter: 'max_chars', id: r.id, source: r.source, origin: r.origin };
    };
    const origin = (o: ProcessOutcome) =>
      o.kind === 'quarantine' ? o.record.origin : o.kind === 'filtered' ? o.origin : '';
    for await (const o of ingestStream(lent(), process, 3)) {
      const at = origin(o).split('=')[1];
      log.push(`begin ${at}`);
      await new Promise((done) => setTimeout(done, 1));
      log.push(`end ${at}`);
      if (at === '9') break;
    }
    const expected = Array.from({ length: 10 }, (_, i) =>
      i < 9 ? [`begin ${i}`, `end ${i}`, `release ${i}`] : [`begin ${i}`, `end ${i}`],
    ).flat();
    assert.deepEqual(log, expected);
  });
});
