// The task queues' processor (workers/tasks.ts) within its limits: a unit past the worker's job time limit fails
// that attempt (retried, as for builds) and is told to stop; BullMQ's own signal still reaches the unit.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Job } from 'bullmq';
import type { ShardedTask } from '../../pipelines/task.ts';
import { makeTaskProcessor } from '../../workers/tasks.ts';

/** A task whose unit waits until its signal aborts, recording why. */
function hangingTask(seen: { reason?: unknown }): ShardedTask {
  return {
    kind: 'hang',
    id: 'hang-1',
    payload: {},
    units: 1,
    prepare: async () => undefined,
    runUnit: (_n, signal) =>
      new Promise((_, reject) => {
        const stop = () => {
          seen.reason = signal?.reason;
          reject(new Error('stopped'));
        };
        if (signal?.aborted) stop();
        else signal?.addEventListener('abort', stop);
      }),
    finish: async () => undefined,
  };
}

/** The fields of a BullMQ job the processor reads, for unit 0 of the task. */
const unitJob = {
  id: 'hang-1.unit.0',
  queueName: 'mixforge-hang',
  data: { kind: 'hang', id: 'hang-1', payload: {}, unit: 0 },
  attemptsStarted: 1,
  attemptsMade: 0,
} as unknown as Job;

describe('task jobs on a worker', () => {
  it('fail an attempt past the job time limit, and the unit is told to stop', async () => {
    const seen: { reason?: unknown } = {};
    const lines: string[] = [];
    const process = makeTaskProcessor({ hang: async () => hangingTask(seen) }, (l) => lines.push(l), {
      jobTimeoutMs: 150,
    });
    await assert.rejects(process(unitJob), /hang 0 of hang-1: time limit of 0 s exceeded/);
    assert.match(String(seen.reason), /time limit/, 'the unit saw the time limit as its abort reason');
    assert.match(lines.at(-1) ?? '', /attempt 1 failed: .*time limit/, 'retried, not failed for good');
  });

  it("pass BullMQ's signal to the unit", async () => {
    const seen: { reason?: unknown } = {};
    const process = makeTaskProcessor({ hang: async () => hangingTask(seen) }, () => undefined, {
      jobTimeoutMs: 5_000,
    });
    const closing = new AbortController();
    const run = process(unitJob, 'token', closing.signal);
    setTimeout(() => closing.abort('worker closing'), 50);
    await assert.rejects(run, /stopped/);
    assert.equal(seen.reason, 'worker closing');
  });
});
