// `lavapipeThreads`: small passes run on lavapipe without its worker pool, and only when the user has not chosen.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { lavapipeThreadsFor, SMALL_PASS_FLOPS } from '../../../train-bridge/gpu/device.ts';
import { modelInfo } from '../../../train-bridge/model/flops.ts';

function child(arg: string, env: Record<string, string | undefined> = {}) {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'test/train-bridge/gpu/lavapipe-threads-child.ts', arg],
    { encoding: 'utf8', env: { ...process.env, LP_NUM_THREADS: undefined, ...env }, timeout: 60_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { env: string | null; isCpu: boolean; threads: string[] };
}

describe('lavapipe worker threads', () => {
  it('picks no pool for fastvithd-tiny batch 8 at 64² and 128², the pool from 256² on', () => {
    const pass = (r: number) => modelInfo('fastvithd-tiny', r).flops * 8;
    assert.equal(lavapipeThreadsFor(pass(64)), 0);
    assert.equal(lavapipeThreadsFor(pass(128)), 0);
    assert.equal(lavapipeThreadsFor(pass(256)), undefined);
    assert.equal(lavapipeThreadsFor(SMALL_PASS_FLOPS), undefined);
  });

  it('0 starts lavapipe with no worker threads; unset keeps its pool; a user setting wins', {
    skip: process.platform !== 'linux',
  }, () => {
    const none = child('0');
    assert.equal(none.isCpu, true, 'these tests run on lavapipe');
    assert.equal(none.env, '0');
    assert.deepEqual(none.threads, []);
    const pool = child('none');
    assert.equal(pool.env, null);
    assert.ok(pool.threads.length >= 1, `lavapipe's pool: ${pool.threads}`);
    const user = child('0', { LP_NUM_THREADS: '1' });
    assert.equal(user.env, '1');
    assert.equal(user.threads.length, 1);
  });
});
