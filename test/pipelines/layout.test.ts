// Which files in a build's output are mixforge's own (the build may replace them) and which are someone else's.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBuildFile } from '../../pipelines/layout.ts';

describe('pipelines/layout isBuildFile', () => {
  it('claims what the build, report and tokens write, and their temp copies', () => {
    for (const own of [
      '_build/context.json',
      '_build/done/write-00003.json',
      '_build/parts/part-00000.rec',
      'manifest.json',
      'report.html',
      'quarantine/quarantine.parquet',
      'shards/shard-00000.parquet',
      'shards/shard-123456.parquet',
      'shards/shard-00007.parquet.tmp-4242-3',
      'manifest.json.tmp-1-0',
      'tokens/r1024/shard-00000.u32',
      'tokens/r1024/index.json',
    ])
      assert.equal(isBuildFile(own), true, own);
  });

  it('leaves everything else to its owner', () => {
    for (const other of [
      'shards/mine.parquet',
      'shards/shard-1.parquet',
      'shards/shard-00000.parquet.bak',
      'shards/notes.txt',
      'notes.txt',
      'manifest.json.orig',
      'quarantine/mine.parquet',
      'tokens/notes.txt',
      'report.html.tmp',
    ])
      assert.equal(isBuildFile(other), false, other);
  });
});
