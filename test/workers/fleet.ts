// Test helpers over a fleet's queues; spawning worker processes lives in dev/worker-process.ts.
import { STEPS } from '../../workers/queues.ts';
import type { BuildQueues } from '../../workers/status.ts';

export { spawnWorker, type WorkerProcess } from '../../dev/worker-process.ts';

/**
 * The names of the workers that hold an active job of this build right now (BullMQ records `processedBy`);
 * with `startedWithinMs`, only those whose job started that recently (so it is surely still running).
 */
export async function workersWithActiveJobs(
  queues: BuildQueues,
  buildId: string,
  startedWithinMs = Number.POSITIVE_INFINITY,
): Promise<string[]> {
  const names = new Set<string>();
  for (const step of STEPS) {
    for (const job of await queues.queue(step).getJobs(['active'])) {
      const recent = Date.now() - (job?.processedOn ?? 0) <= startedWithinMs;
      if (job?.id?.startsWith(`${buildId}.`) && job.processedBy && recent) names.add(job.processedBy);
    }
  }
  return [...names];
}
