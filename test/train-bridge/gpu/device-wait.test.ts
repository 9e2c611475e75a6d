// Waiting on device promises with the main thread asleep: values and errors pass through, timers still run
// while waiting, and the nap loop ends with the last waiter (so the process can exit).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { awaitSleeping } from '../../../train-bridge/gpu/device-wait.ts';

const later = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

test('concurrent waits get their own value or error, and timers fire meanwhile', async () => {
  const fired: string[] = [];
  setTimeout(() => fired.push('timer'), 5);
  const failing = later(10, 0).then(() => {
    throw new Error('device lost');
  });
  const [a, b, c] = await Promise.allSettled([
    awaitSleeping(later(30, 'map')),
    awaitSleeping(later(20, 'drain')),
    awaitSleeping(failing),
  ]);
  assert.deepEqual(a, { status: 'fulfilled', value: 'map' });
  assert.deepEqual(b, { status: 'fulfilled', value: 'drain' });
  assert.equal(c.status, 'rejected');
  assert.equal((c as PromiseRejectedResult).reason.message, 'device lost');
  assert.deepEqual(fired, ['timer']);
});

test('no nap stays queued once the last wait has settled, and a new wait starts one again', async () => {
  for (let round = 0; round < 2; round++) {
    assert.equal(await awaitSleeping(later(5, round)), round);
    await nextTurn();
    assert.ok(!process.getActiveResourcesInfo().includes('Immediate'), `round ${round}`);
  }
});
