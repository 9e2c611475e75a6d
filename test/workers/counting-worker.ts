// A worker process running the counting build (argv[2]: JSON settings), for the multi-process tests of the BullMQ
// layer. Same startBuildWorker and signal handling as `mixforge worker`; only the jobs differ.
import { DEFAULT_WORKER_SETTINGS, startBuildWorker } from '../../workers/worker.ts';
import { type CountingBuildParams, countingBuild } from './counting-build.ts';

interface Settings {
  redis: string;
  name: string;
  params: CountingBuildParams;
  lockDurationMs: number;
  stalledIntervalMs: number;
}

const s = JSON.parse(process.argv[2] ?? '{}') as Settings;
const worker = await startBuildWorker({
  ...DEFAULT_WORKER_SETTINGS,
  redis: s.redis,
  name: s.name,
  jobs: countingBuild(s.params),
  lockDurationMs: s.lockDurationMs,
  stalledIntervalMs: s.stalledIntervalMs,
  maxStalledCount: 20,
  log: (line) => process.stderr.write(`${line}\n`),
});
process.stdout.write('ready\n');
let signals = 0;
const onSignal = () => {
  signals++;
  // As `mixforge worker`: non-zero when it had to stop without Redis.
  worker.close({ handBack: signals > 1 }).then((r) => process.exit(r.clean ? 0 : 1));
};
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);
