// Setup shared by the BullMQ test suites: a private redis-server with a client and BuildQueues on it, an optional temp
// folder, and the worker processes the tests spawn, all started before the suite and torn down after it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import { type RedisServerOptions, startRedis, type TestRedis } from '../../dev/redis-server.ts';
import { BuildQueues } from '../../workers/status.ts';
import { setUpInBefore } from '../helpers/hooks.ts';
import type { WorkerProcess } from './fleet.ts';

export interface PrivateQueuesOptions {
  /** Options of the private redis-server (e.g. append-only persistence for restart tests). */
  redis?: RedisServerOptions;
  /** With a prefix, a temp folder (`root`) is made before the suite and removed after it. */
  tmpPrefix?: string;
  /** Runs alongside Redis's start in `before` (e.g. starting S3). */
  setUp?: () => Promise<void>;
  /** Runs last in `after`. */
  tearDown?: () => Promise<void>;
}

export interface PrivateQueues {
  readonly redis: TestRedis;
  readonly queues: BuildQueues;
  /** The temp folder (only with `tmpPrefix`). */
  readonly root: string;
  /** Worker processes the tests start: `after` stops them before it closes the queues and stops Redis. */
  readonly fleet: WorkerProcess[];
}

/**
 * Registers before/after hooks in the enclosing describe: a private Redis (connection errors ignored, since tests
 * take Redis away) with BuildQueues on it; after the suite, the fleet is stopped, then the queues and Redis.
 */
export function usePrivateQueues(opts: PrivateQueuesOptions = {}): PrivateQueues {
  let redis: TestRedis | undefined;
  let client: Redis | undefined;
  let queues: BuildQueues | undefined;
  let root: string | undefined;
  const fleet: WorkerProcess[] = [];

  before(async () => {
    [redis] = await Promise.all([startRedis(opts.redis), opts.setUp?.()]);
    client = new Redis(redis.url, { maxRetriesPerRequest: null });
    client.on('error', () => undefined);
    queues = new BuildQueues(client);
    if (opts.tmpPrefix !== undefined) root = await mkdtemp(join(tmpdir(), opts.tmpPrefix));
  });
  after(async () => {
    await Promise.all(fleet.map((w) => w.stop()));
    await queues?.close();
    client?.disconnect();
    await redis?.stop();
    if (root !== undefined) await rm(root, { recursive: true, force: true });
    await opts.tearDown?.();
  });

  return {
    get redis() {
      return setUpInBefore(redis, 'Redis');
    },
    get queues() {
      return setUpInBefore(queues, 'BuildQueues');
    },
    get root() {
      return setUpInBefore(root, 'the temp folder (tmpPrefix)');
    },
    fleet,
  };
}
