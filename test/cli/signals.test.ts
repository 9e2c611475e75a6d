// Stop requests: a signal delivered twice at once (terminal + launcher) is one request; later ones count on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { onStopSignals } from '../../cli/signals.ts';

test('repeats within half a second count once; a later signal is the next request', async () => {
  const seen: [string, number][] = [];
  const remove = onStopSignals((sig, n) => seen.push([sig, n]));
  try {
    process.emit('SIGINT', 'SIGINT');
    process.emit('SIGINT', 'SIGINT');
    process.emit('SIGTERM', 'SIGTERM');
    assert.deepEqual(seen, [['SIGINT', 1]]);
    await new Promise((r) => setTimeout(r, 600));
    process.emit('SIGTERM', 'SIGTERM');
    assert.deepEqual(seen, [
      ['SIGINT', 1],
      ['SIGTERM', 2],
    ]);
  } finally {
    remove();
  }
});
