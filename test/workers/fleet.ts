// Test helpers over a fleet's queues; spawning worker processes lives in dev/worker-process.ts.
import { STEPS } from '../../workers/queues.ts';
import type { BuildQueues } from '../../workers/status.ts';

export { spawnWorker, type WorkerProcess } from '../../dev/worker-process.ts';

/**
 * The names of the workers that hold an active job of this build right now (BullMQ records `processedBy`);
 * with `runningFor` [min, max] ms, only those whose job has been running that long (logged its start, not yet done).
 */
export async function workersWithActiveJobs(
  queues: BuildQueues,
  buildId: string,
  runningFor: readonly [number, number] = [0, Number.POSITIVE_INFINITY],
): Promise<string[]> {
  const names = new Set<string>();
  for (const step of STEPS) {
    for (const job of await queues.queue(step).getJobs(['active'])) {
      const age = Date.now() - (job?.processedOn ?? 0);
      const recent = age >= runningFor[0] && age <= runningFor[1];
      if (job?.id?.startsWith(`${buildId}.`) && job.processedBy && recent) names.add(job.processedBy);
    }
  }
  return [...names];
}
