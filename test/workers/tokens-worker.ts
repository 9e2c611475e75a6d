// A worker process serving only `tokens` tasks (argv[2]: JSON settings), for the kill test of `mixforge tokens
// --redis`. The handler is `mixforge worker`'s, except that each unit waits 500 ms before counting, so that a kill
// aimed at a unit's start lands inside it.
import type { ShardedTask } from '../../pipelines/task.ts';
import { tokenTaskFromPayload } from '../../train-bridge/loader/token-counts.ts';
import { DEFAULT_WORKER_SETTINGS, startBuildWorker } from '../../workers/worker.ts';

interface Settings {
  redis: string;
  name: string;
}

const s = JSON.parse(process.argv[2] ?? '{}') as Settings;
const slowUnits = async (payload: unknown): Promise<ShardedTask> => {
  const task = await tokenTaskFromPayload(payload);
  return {
    ...task,
    async runUnit(n, signal) {
      await new Promise((r) => setTimeout(r, 500));
      return task.runUnit(n, signal);
    },
  };
};
const worker = await startBuildWorker({
  ...DEFAULT_WORKER_SETTINGS,
  redis: s.redis,
  name: s.name,
  steps: [],
  tasks: { tokens: slowUnits },
  // Short locks and stalled checks: a killed worker's unit comes back within about 1.5 s.
  lockDurationMs: 1000,
  stalledIntervalMs: 250,
  maxStalledCount: 20,
  log: (line) => process.stderr.write(`${line}\n`),
});
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  worker.close().then((r) => process.exit(r.clean ? 0 : 1));
});
