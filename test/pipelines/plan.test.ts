// plan with the default build options: a json file of many small records is cut by record count as well as by
// bytes, so a 40K-record file (4 MB, far under the 64 MiB byte target) gives several ingest jobs, not one.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseSpec } from '../../manifests/spec.ts';
import { DEFAULT_BUILD_OPTIONS, makeBuildContext } from '../../pipelines/context.ts';
import { planBuild, summarisePlan } from '../../pipelines/jobs/plan.ts';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-plan-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const RECORDS = 40_000;

function record(i: number): string {
  return JSON.stringify({
    id: `r${i}`,
    image: `img/${i % 97}.jpg`,
    conversations: [
      { from: 'human', value: `<image>\nWhat is ${i}?` },
      { from: 'gpt', value: `It is ${i}.` },
    ],
  });
}

for (const layout of ['json', 'jsonl'] as const) {
  test(`a ${RECORDS}-record ${layout} file plans several partitions by default, every record once`, async () => {
    const rows = Array.from({ length: RECORDS }, (_, i) => record(i));
    const file = join(dir, `small.${layout}`);
    await writeFile(file, layout === 'json' ? `[\n${rows.join(',\n')}\n]\n` : `${rows.join('\n')}\n`);
    const spec = parseSpec(
      `
name: many-small
seed: 1
output:
  shard_rows: 1000
components:
  - name: small
    source:
      format: ${layout === 'json' ? 'llava-json' : 'cambrian'}
      uris: ["${file}"]
`,
      { file: 'many-small.yaml', env: {} },
    );
    const plan = await planBuild(makeBuildContext(spec, join(dir, `out-${layout}`)));
    const counts = plan.partitions.map((p) => p.partition.records ?? -1);
    assert.ok(counts.length >= 2, `${counts.length} partitions`);
    assert.deepEqual(counts, [10_000, 10_000, 10_000, 10_000]);
    assert.equal(DEFAULT_BUILD_OPTIONS.partitionRecords, 10_000);
    // Partitions tile the file: each starts where the previous ends, and the first items follow on.
    const parts = plan.partitions.map((p) => p.partition);
    for (let k = 1; k < parts.length; k++) {
      assert.equal(parts[k].start, parts[k - 1].end);
      assert.equal(parts[k].firstItem, k * 10_000);
    }
    assert.equal(summarisePlan(spec, plan).components[0].records, RECORDS);
  });
}
