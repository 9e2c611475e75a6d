// kill -9 of a real `mixforge worker` at the near-duplicate jobs of a demo build with near_dedup on (issue #17): the
// head that adds the band jobs after it committed, a band mid-job and after committing, and the resolve job at its
// start. Every published byte must equal the in-process build's (test/workers/kill-points-harness.ts).
import { killPointsSuite } from './kill-points-harness.ts';

killPointsSuite('kill -9 of the real worker process at near-dedup jobs (local storage)', [
  {
    // near_dedup on (8 band jobs): bands killed mid-job and after committing, and the head that adds them.
    seed: 15,
    set: ['near_dedup={text: {bands: 8}}'],
    kills: [
      { step: 'near-dedup-plan', n: 0, at: 'done' },
      { step: 'near-dedup-band', n: 3, at: 'start' },
      { step: 'near-dedup-band', n: 6, at: 'done' },
      { step: 'near-dedup', n: 0, at: 'start' },
    ],
  },
]);
