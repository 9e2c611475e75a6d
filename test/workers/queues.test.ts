// Pure parts of the BullMQ layer: job ids, payload validation, the flow of one level, and which errors retry.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeterministicInputError, SourceFileError, SpecError, StorageError } from '../../core/errors.ts';
import { levelFlow } from '../../workers/flows.ts';
import { isDeterministicError } from '../../workers/processor.ts';
import { bullJobId, jobPayloadSchema, queueName } from '../../workers/queues.ts';

describe('workers/queues', () => {
  it('job ids are <buildId>.<step>.<n>, without the colon BullMQ rejects', () => {
    assert.equal(bullJobId('it-1_1m-0123456789ab', 'ingest', 12), 'it-1_1m-0123456789ab.ingest.12');
    assert.ok(!bullJobId('demo-abc', 'write', 0).includes(':'));
    assert.equal(queueName('route'), 'mixforge-route');
  });

  it('payload validation names the field', () => {
    assert.ok(
      jobPayloadSchema.safeParse({ out: 's3://b/o', buildId: 'demo-1', step: 'write', n: 3 }).success,
    );
    const bad = jobPayloadSchema.safeParse({ out: 's3://b/o', buildId: 'demo-1', step: 'write', n: -1 });
    assert.equal(bad.success, false);
    assert.deepEqual(bad.error?.issues[0]?.path, ['n']);
    const badStep = jobPayloadSchema.safeParse({ out: '/o', buildId: 'demo-1', step: 'dedup', n: 0 });
    assert.deepEqual(badStep.error?.issues[0]?.path, ['step']);
  });
});

describe('workers/flows levelFlow', () => {
  it('a level is its parent with one child per job, each failing the parent when it fails for good', () => {
    const ref = { buildId: 'demo-1', out: 's3://out/x', retry: { attempts: 4, backoffMs: 1000 } };
    const flow = levelFlow(ref, 'finalize', 3);
    assert.equal(flow.queueName, 'mixforge-finalize');
    assert.equal(flow.opts?.jobId, 'demo-1.finalize.0');
    assert.deepEqual(flow.data, { out: 's3://out/x', buildId: 'demo-1', step: 'finalize', n: 0 });
    assert.deepEqual(
      flow.children?.map((c) => [c.queueName, c.opts?.jobId, c.opts?.failParentOnFailure, c.opts?.attempts]),
      [
        ['mixforge-write', 'demo-1.write.0', true, 4],
        ['mixforge-write', 'demo-1.write.1', true, 4],
        ['mixforge-write', 'demo-1.write.2', true, 4],
      ],
    );
    assert.deepEqual(flow.children?.[0]?.opts?.backoff, { type: 'exponential', delay: 1000 });
  });
});

describe('workers/processor isDeterministicError', () => {
  it('bad input and bad specs do not retry; storage and unknown errors do', () => {
    assert.equal(isDeterministicError(new SourceFileError('s3://b/x.parquet', 'missing column')), true);
    assert.equal(isDeterministicError(new SpecError('spec.yaml', 'components[0]', 'bad')), true);
    assert.equal(isDeterministicError(new DeterministicInputError('bad tar member')), true);
    assert.equal(
      isDeterministicError(new Error('wrapped', { cause: new SourceFileError('/x', 'bad') })),
      true,
    );
    assert.equal(isDeterministicError(new StorageError('s3://b/x', '503 SlowDown')), false);
    assert.equal(isDeterministicError(new Error('ETIMEDOUT')), false);
    assert.equal(isDeterministicError('not an error'), false);
  });
});
