// Sharded tasks (pipelines/task.ts) on BullMQ: a task is one flow on the queue `mixforge-<kind>`, a finish job whose
// children are the unit jobs (ids `<task id>.unit.<n>`, `<task id>.finish`). A worker rebuilds the task from the
// job's payload with the handler its process registered for the kind: the handler may come from a higher layer
// (`mixforge worker` registers `tokens`, whose tokenizer lives in train-bridge), so workers/ never imports it.
import { FlowProducer, type Job, type JobState, Queue, UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { errorMessage, MixforgeError } from '../core/errors.ts';
import type { ShardedTask } from '../pipelines/task.ts';
import { bounded, isDeterministicError } from './processor.ts';
import { type RetryPolicy, retryOptions } from './queues.ts';

/** Per task kind, how a worker rebuilds a task from its payload (it validates the payload). */
export type TaskHandlers = Readonly<Record<string, (payload: unknown) => Promise<ShardedTask>>>;

export const taskQueueName = (kind: string) => `mixforge-${kind}`;

/** A unit's job id, or the finish job's for `unit` undefined. */
export const taskJobId = (id: string, unit?: number) =>
  unit === undefined ? `${id}.finish` : `${id}.unit.${unit}`;

const taskJobSchema = z.object({
  kind: z.string().regex(/^[a-z0-9-]+$/),
  id: z.string().regex(/^[a-z0-9_-]+$/),
  payload: z.unknown(),
  /** Absent for the finish job. */
  unit: z.number().int().nonnegative().optional(),
});
type TaskJob = z.infer<typeof taskJobSchema>;

function taskQueue(redis: Redis, kind: string): Queue {
  const queue = new Queue(taskQueueName(kind), { connection: redis });
  queue.on('error', () => undefined);
  return queue;
}

/**
 * Enqueues a task unless it is already running: runs its prepare() here, then adds the flow. A task whose earlier
 * flow completed or failed is added afresh (units whose outputs are committed are skips).
 */
export async function submitTask(redis: Redis, task: ShardedTask, retry: RetryPolicy): Promise<void> {
  const queue = taskQueue(redis, task.kind);
  const flows = new FlowProducer({ connection: redis });
  flows.on('error', () => undefined);
  try {
    const earlier = await queue.getJob(taskJobId(task.id));
    if (earlier) {
      const state = await earlier.getState();
      if (state !== 'completed' && state !== 'failed') return;
      await earlier.remove({ removeChildren: true });
    }
    await task.prepare();
    const data = (unit?: number): TaskJob => ({ kind: task.kind, id: task.id, payload: task.payload, unit });
    await flows.add({
      name: 'finish',
      queueName: taskQueueName(task.kind),
      data: data(),
      opts: { jobId: taskJobId(task.id), ...retryOptions(retry) },
      children: Array.from({ length: task.units }, (_, n) => ({
        name: 'unit',
        queueName: taskQueueName(task.kind),
        data: data(n),
        opts: { jobId: taskJobId(task.id, n), ...retryOptions(retry), failParentOnFailure: true },
      })),
    });
  } finally {
    await flows.close();
    await queue.close();
  }
}

/** Where a submitted task stands: its finish job's state ('absent' when Redis holds no flow for it) and its units. */
export interface TaskStatus {
  id: string;
  state: 'absent' | JobState | 'unknown';
  done: number;
  total: number;
  /** Why it failed, unit by unit (or the finish job's reason), when `state` is 'failed'. */
  failures: string[];
}

type TaskRef = Pick<ShardedTask, 'kind' | 'id' | 'units'>;

/** The unit jobs of `task` that are in `state` now, with their unit numbers. */
async function unitsIn(queue: Queue, task: TaskRef, state: JobState): Promise<[number, Job][]> {
  const found: [number, Job][] = [];
  for (let n = 0; n < task.units; n++) {
    const unit = await queue.getJob(taskJobId(task.id, n));
    if (unit && (await unit.getState()) === state) found.push([n, unit]);
  }
  return found;
}

async function readTaskStatus(queue: Queue, task: TaskRef): Promise<TaskStatus> {
  const base = { id: task.id, total: task.units, failures: [] as string[] };
  const finish = await queue.getJob(taskJobId(task.id));
  if (!finish) return { ...base, state: 'absent', done: 0 };
  const state = await finish.getState();
  const done = state === 'completed' ? task.units : ((await finish.getDependenciesCount()).processed ?? 0);
  if (state === 'failed') {
    for (const [n, unit] of await unitsIn(queue, task, 'failed'))
      base.failures.push(`unit ${n}: ${unit.failedReason}`);
    if (!base.failures.length) base.failures.push(`finish: ${finish.failedReason}`);
  }
  return { ...base, state, done };
}

/** One look at a submitted task (`mixforge tokens --status`): nothing waits, nothing changes. */
export async function taskStatus(redis: Redis, task: TaskRef): Promise<TaskStatus> {
  const queue = taskQueue(redis, task.kind);
  try {
    return await readTaskStatus(queue, task);
  } finally {
    await queue.close();
  }
}

/**
 * Cancels a submitted task: its jobs that no worker holds are removed at once; a unit that is running finishes its
 * shard (outputs are committed atomically, and a later submission skips them) and is removed once it ends, waiting
 * up to `waitMs`. Returns the ids still running when the wait ran out (they are removed by a later cancel).
 */
export async function cancelTask(
  redis: Redis,
  task: TaskRef,
  opts: { waitMs: number },
): Promise<{ found: boolean; completed: boolean; stillActive: string[] }> {
  const queue = taskQueue(redis, task.kind);
  const deadline = Date.now() + opts.waitMs;
  try {
    for (;;) {
      const finish = await queue.getJob(taskJobId(task.id));
      if (!finish) return { found: false, completed: false, stillActive: [] };
      if ((await finish.getState()) === 'completed') return { found: true, completed: true, stillActive: [] };
      // Waiting, delayed and failed units go now; a locked (running) one stays until it ends.
      await finish.removeUnprocessedChildren();
      const active = (await unitsIn(queue, task, 'active')).map(([n]) => taskJobId(task.id, n));
      if ((await finish.getState()) === 'active') active.push(taskJobId(task.id));
      if (!active.length) {
        // Whatever is left (the finish job, units that completed) goes with it; 0 means a worker took a job since.
        if ((await queue.remove(taskJobId(task.id), { removeChildren: true })) === 1)
          return { found: true, completed: false, stillActive: [] };
      } else if (Date.now() >= deadline) return { found: true, completed: false, stillActive: active };
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await queue.close();
  }
}

/** Follows a submitted task until its finish job completes; throws naming the failed jobs when it fails for good. */
export async function followTask(
  redis: Redis,
  task: TaskRef,
  opts: { pollMs?: number; onUnits?: (done: number, total: number) => void } = {},
): Promise<void> {
  const queue = taskQueue(redis, task.kind);
  let reported = -1;
  try {
    for (;;) {
      const status = await readTaskStatus(queue, task);
      if (status.state === 'absent')
        throw new MixforgeError(`task ${task.id}: its finish job is gone from Redis`);
      if (status.state === 'failed')
        throw new MixforgeError(`task ${task.id} failed: ${status.failures.join('; ')}`);
      if (status.done !== reported) {
        reported = status.done;
        opts.onUnits?.(status.done, task.units);
      }
      if (status.state === 'completed') return;
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 500));
    }
  } finally {
    await queue.close();
  }
}

/**
 * The processor of a task queue: rebuilds the task (cached per payload: a tokenizer loads once per worker), runs the
 * unit or, once every unit completed, the finish, each within `jobTimeoutMs` (`mixforge worker --job-timeout`, as
 * for builds: the attempt fails and is retried). Deterministic errors fail at once; others retry with backoff.
 */
export function makeTaskProcessor(
  handlers: TaskHandlers,
  log: (line: string) => void,
  opts: { jobTimeoutMs: number },
) {
  const tasks = new Map<string, Promise<ShardedTask>>();
  return async (job: Job, _token?: string, signal?: AbortSignal): Promise<{ ran: boolean }> => {
    const parsed = taskJobSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`job ${job.id} (${job.queueName}): not a task job`);
    const p = parsed.data;
    const what = `${p.kind} ${p.unit ?? 'finish'} of ${p.id}`;
    const handler = handlers[p.kind];
    if (!handler) throw new UnrecoverableError(`${what}: this worker has no handler for ${p.kind} tasks`);
    log(`${what}: started (start ${job.attemptsStarted})`);
    try {
      const key = JSON.stringify(p.payload);
      let made = tasks.get(key);
      if (!made) {
        made = handler(p.payload);
        made.catch(() => tasks.delete(key));
        tasks.clear(); // one task at a time is the common case; the map only spares reloading its tokenizer
        tasks.set(key, made);
      }
      const task = await made;
      if (task.id !== p.id) throw new UnrecoverableError(`${what}: the payload now makes task ${task.id}`);
      let ran = true;
      const limits = { timeoutMs: opts.jobTimeoutMs };
      const unit = p.unit;
      if (unit !== undefined)
        // The unit stops on the time limit or on BullMQ's own signal (a closing worker), whichever comes first.
        ran = (
          await bounded(
            (abandon) => task.runUnit(unit, signal ? AbortSignal.any([abandon, signal]) : abandon),
            limits,
            what,
          )
        ).ran;
      else {
        const c = await job.getDependenciesCount();
        if ((c.processed ?? 0) !== task.units || c.unprocessed || c.failed)
          throw new UnrecoverableError(`${what}: ${c.processed ?? 0} of ${task.units} units done`);
        await bounded(() => task.finish(), limits, what);
      }
      log(`${what}: ${ran ? 'done' : 'already done'}`);
      return { ran };
    } catch (err) {
      const final = err instanceof UnrecoverableError || isDeterministicError(err);
      log(
        `${what}: ${final ? 'failed for good' : `attempt ${job.attemptsMade + 1} failed`}: ${errorMessage(err)}`,
      );
      if (final && !(err instanceof UnrecoverableError)) throw new UnrecoverableError(errorMessage(err));
      throw err;
    }
  };
}
