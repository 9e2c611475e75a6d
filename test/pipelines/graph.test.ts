// The build graph as pipelines/graph.ts derives it from the stage list: levels, who adds what, totals from counts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addedBy, LAST_STAGE, LEVELS, SCRATCH_FOLDERS, STAGES, stageTotals } from '../../pipelines/graph.ts';

describe('pipelines/graph', () => {
  it('lists the stages in build order and groups them into levels headed by single-job stages', () => {
    assert.deepEqual(STAGES, [
      'plan',
      'contamination-index',
      'ingest',
      'near-dedup-plan',
      'near-dedup-band',
      'near-dedup',
      'select',
      'shuffle',
      'route',
      'write',
      'finalize',
    ]);
    assert.deepEqual(LEVELS, [
      { head: 'plan', children: [] },
      { head: 'contamination-index', children: [] },
      { head: 'near-dedup-plan', children: ['ingest'] },
      { head: 'near-dedup', children: ['near-dedup-band'] },
      { head: 'select', children: [] },
      { head: 'route', children: ['shuffle'] },
      { head: 'finalize', children: ['write'] },
    ]);
    assert.equal(LAST_STAGE, 'finalize');
  });

  it('each level is added by the head of the level before it', () => {
    const adders = Object.fromEntries(STAGES.map((s) => [s, addedBy(s)]));
    assert.deepEqual(adders, {
      plan: undefined,
      'contamination-index': 'plan',
      ingest: 'contamination-index',
      'near-dedup-plan': 'contamination-index',
      'near-dedup-band': 'near-dedup-plan',
      'near-dedup': 'near-dedup-plan',
      select: 'near-dedup',
      shuffle: 'select',
      route: 'select',
      write: 'route',
      finalize: 'route',
    });
  });

  it('knows a stage total once the counts fixed by earlier levels are known', () => {
    const totals = (counts: { partitions?: number; bands?: number; shards?: number }) =>
      Object.fromEntries(stageTotals(counts));
    assert.deepEqual(totals({}), {
      plan: 1,
      'contamination-index': undefined,
      ingest: undefined,
      'near-dedup-plan': undefined,
      'near-dedup-band': undefined,
      'near-dedup': undefined,
      select: undefined,
      shuffle: undefined,
      route: undefined,
      write: undefined,
      finalize: undefined,
    });
    assert.deepEqual(totals({ partitions: 7 }), {
      plan: 1,
      'contamination-index': 1,
      ingest: 7,
      'near-dedup-plan': 1,
      'near-dedup-band': undefined,
      'near-dedup': undefined,
      select: undefined,
      shuffle: undefined,
      route: undefined,
      write: undefined,
      finalize: undefined,
    });
    assert.deepEqual(totals({ partitions: 7, bands: 32 }), {
      plan: 1,
      'contamination-index': 1,
      ingest: 7,
      'near-dedup-plan': 1,
      'near-dedup-band': 32,
      'near-dedup': 1,
      select: 1,
      shuffle: undefined,
      route: undefined,
      write: undefined,
      finalize: undefined,
    });
    assert.deepEqual(totals({ partitions: 7, bands: 0, shards: 5 }), {
      plan: 1,
      'contamination-index': 1,
      ingest: 7,
      'near-dedup-plan': 1,
      'near-dedup-band': 0,
      'near-dedup': 1,
      select: 1,
      shuffle: 7,
      route: 1,
      write: 5,
      finalize: 1,
    });
  });

  it('cleans up exactly the scratch folders the stages declare', () => {
    assert.deepEqual([...SCRATCH_FOLDERS].sort(), [
      'buckets',
      'near-dup',
      'parts',
      'quarantine',
      'routes',
      'select',
    ]);
  });
});
