// Setup shared by the multi-process tests of the counting build: a private Redis, a temp folder, worker processes
// running counting-worker.ts, and the in-process reference build the queue build must equal.
import { join } from 'node:path';
import type { RedisServerOptions } from '../../dev/redis-server.ts';
import type { BuildContext } from '../../pipelines/context.ts';
import {
  type CountingBuildParams,
  type CountingManifest,
  countingContext,
  runCountingInProcess,
  writeCountingContext,
} from './counting-build.ts';
import { spawnWorker, type WorkerProcess } from './fleet.ts';
import { type PrivateQueues, usePrivateQueues } from './private-queues.ts';

const WORKER = join(import.meta.dirname, 'counting-worker.ts');

export interface CountingFleetOptions {
  params: CountingBuildParams;
  tmpPrefix: string;
  redis?: RedisServerOptions;
  /** BullMQ lock duration and stalled-check interval of the worker processes. */
  lockDurationMs: number;
  stalledIntervalMs: number;
}

export interface CountingFleet extends PrivateQueues {
  /** Spawns a counting-worker process on the suite's Redis and waits until it is ready (not added to `fleet`). */
  startWorker(name: string): Promise<WorkerProcess>;
  /**
   * Runs the in-process reference build (under `root/ref`) and writes the context of a fresh build `buildId`
   * (under `root/out`) for the queue to run.
   */
  referenceAndBuild(buildId: string): Promise<{ expected: CountingManifest; ctx: BuildContext }>;
}

/** Registers the suite's before/after hooks (see usePrivateQueues) in the enclosing describe. */
export function useCountingFleet(opts: CountingFleetOptions): CountingFleet {
  const q = usePrivateQueues({ redis: opts.redis, tmpPrefix: opts.tmpPrefix });
  return {
    get redis() {
      return q.redis;
    },
    get queues() {
      return q.queues;
    },
    get root() {
      return q.root;
    },
    fleet: q.fleet,
    startWorker: (name) =>
      spawnWorker(
        name,
        WORKER,
        [
          JSON.stringify({
            redis: q.redis.url,
            name,
            params: opts.params,
            lockDurationMs: opts.lockDurationMs,
            stalledIntervalMs: opts.stalledIntervalMs,
          }),
        ],
        { readyText: /^ready$/m },
      ),
    async referenceAndBuild(buildId) {
      const expected = await runCountingInProcess(
        countingContext('counting-ref', join(q.root, 'ref')),
        opts.params,
      );
      const ctx = countingContext(buildId, join(q.root, 'out'));
      await writeCountingContext(ctx);
      return { expected, ctx };
    },
  };
}
