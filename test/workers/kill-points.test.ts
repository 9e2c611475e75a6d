// kill -9 of a real `mixforge worker` at many points of real builds, over several seeds: the worker is the child the
// launcher (bin/mixforge.js) re-runs itself as, and it is killed when its own log shows a job boundary (a job just
// started, or its work is committed but not yet recorded as completed in Redis). After every build, each file the
// build published must be byte-identical to the in-process build of the same spec, and no temp file may be left.
// One plan uses a long lock so that a head killed after adding the next level is rerun after finalize (the race at
// finalize of docs/workers.md): the rerun must be a skip, and the build must end well.
import { STAGES } from '../../pipelines/graph.ts';
import { killPointsSuite, type Plan } from './kill-points-harness.ts';

const PLANS: Plan[] = [
  {
    seed: 11,
    kills: [
      { step: 'plan', n: 0, at: 'done' },
      { step: 'shuffle', n: 2, at: 'done' },
      { step: 'write', n: 0, at: 'start' },
    ],
  },
  {
    seed: 12,
    kills: [
      { step: 'ingest', n: 1, at: 'start' },
      { step: 'select', n: 0, at: 'done' },
      { step: 'finalize', n: 0, at: 'start' },
    ],
  },
  {
    seed: 13,
    kills: [
      { step: 'ingest', n: 0, at: 'done' },
      { step: 'route', n: 0, at: 'done' },
      { step: 'write', n: 1, at: 'start' },
    ],
  },
  {
    // A long lock: the killed route (its finalize level already added) is rerun after the build finished.
    seed: 14,
    kills: [{ step: 'route', n: 0, at: 'done' }],
    lockMs: 8000,
    lateRerunOf: 'route 0',
    // Route alone on one worker, every other step on the other: the killed route's worker holds no job that
    // finalize awaits.
    queues: ['route', STAGES.filter((s) => s !== 'route').join(',')],
  },
];

killPointsSuite('kill -9 of the real worker process at job boundaries, over seeds (local storage)', PLANS);
