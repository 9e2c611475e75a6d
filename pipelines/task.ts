// A sharded task: work that is not a build but runs like one (`mixforge tokens`): N idempotent unit jobs, then one
// finish job that commits what vouches for them. In-process here; on a fleet through workers/tasks.ts, where a worker
// rebuilds the task from its small JSON payload with the handler its process registered for the task's kind.
import { forEachLimited } from './executor-inprocess.ts';

export interface ShardedTask {
  /** The kind of work (its queue on a fleet, `mixforge-<kind>`), e.g. `tokens`. */
  kind: string;
  /** Deterministic: the same work gets the same id (fleet job ids derive from it). `[a-z0-9_-]`. */
  id: string;
  /** What a worker rebuilds this task from (small JSON: URIs and settings, never data). */
  payload: unknown;
  units: number;
  /** Once, by whoever starts the task, before any unit: e.g. removes outputs made with other settings. */
  prepare(): Promise<void>;
  /** Unit n; skips (ran: false) when its output is already committed. Writes only under deterministic keys. */
  runUnit(n: number, signal?: AbortSignal): Promise<{ ran: boolean }>;
  /** Once every unit is done. */
  finish(): Promise<void>;
}

export interface TaskRunOptions {
  concurrency?: number;
  signal?: AbortSignal;
  onUnit?: (done: number, total: number, skipped: boolean) => void;
}

export async function runTaskInProcess(task: ShardedTask, opts: TaskRunOptions = {}): Promise<void> {
  await task.prepare();
  let done = 0;
  await forEachLimited(
    task.units,
    Math.max(1, opts.concurrency ?? 2),
    async (n) => {
      const r = await task.runUnit(n, opts.signal);
      opts.onUnit?.(++done, task.units, !r.ran);
    },
    opts.signal,
  );
  opts.signal?.throwIfAborted();
  await task.finish();
}
