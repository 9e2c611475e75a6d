// `mixforge tokens` as per-shard jobs: the sidecar is the same bytes in-process at any concurrency, after a resume
// from a crash mid-way, and on BullMQ with two worker processes one of which is killed inside a shard job.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { tokenCountTask, writeTokenCounts } from '../../train-bridge/loader/token-counts.ts';
import { DEFAULT_RETRY } from '../../workers/queues.ts';
import { cancelTask, followTask, submitTask, taskQueueName, taskStatus } from '../../workers/tasks.ts';
import { writeFixtureMixture } from '../train-bridge/loader/fixtures.ts';
import { spawnWorker, type WorkerProcess } from './fleet.ts';
import { usePrivateQueues } from './private-queues.ts';

const RES = 64;
// Six shards of unequal sizes: the tests need several units (a crash after two, a kill inside one), not rows. Unit 2,
// the one killed, keeps 250 rows: its counting after the worker's 500 ms wait widens the window the kill aims at.
const SHARDS = [30, 20, 250, 15, 28, 22];

describe('mixforge tokens as shard jobs', () => {
  const suite = usePrivateQueues({ tmpPrefix: 'mixforge-tokens-fleet-' });
  let manifest = '';
  let reference: Map<string, string>;
  const sidecar = () => join(suite.root, 'mix', 'tokens', `r${RES}`);

  /** sha256 of every file of the sidecar. */
  async function sidecarFiles(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const f of (await readdir(sidecar())).sort())
      out.set(
        f,
        createHash('sha256')
          .update(await readFile(join(sidecar(), f)))
          .digest('hex'),
      );
    return out;
  }

  /** `mixforge tokens <manifest> --redis URL --status` (or `--cancel`), as a user with a detached count runs it. */
  function tokensCli(action: '--status' | '--cancel' = '--status') {
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'cli/main.ts',
        'tokens',
        manifest,
        '--resolution',
        String(RES),
        '--redis',
        suite.redis.url,
        action,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  before(async () => {
    await writeFixtureMixture(join(suite.root, 'mix'), {
      shards: SHARDS,
      imageCount: (s, i) => (i + s) % 3,
      imageSize: { width: 8, height: 8 },
    });
    manifest = join(suite.root, 'mix', 'manifest.json');
    await writeTokenCounts(manifest, { resolution: RES, concurrency: 1 });
    reference = await sidecarFiles();
    assert.deepEqual(
      [...reference.keys()],
      ['index.json', ...SHARDS.map((_, s) => `shard-${String(s).padStart(5, '0')}.u32`)],
    );
  });

  it('in-process: the same bytes at any concurrency, and a rerun after a crash counts only the missing shards', async () => {
    await rm(sidecar(), { recursive: true, force: true });
    await writeTokenCounts(manifest, { resolution: RES, concurrency: 4 });
    assert.deepEqual(await sidecarFiles(), reference);
    // A crash after two shards: the index vouches for none yet, the two files are kept and not counted again.
    await rm(sidecar(), { recursive: true, force: true });
    const task = await tokenCountTask({ manifest, resolution: RES, imageTokenPosition: 'data' });
    await task.prepare();
    await task.runUnit(0);
    await task.runUnit(3);
    const index = JSON.parse(await readFile(join(sidecar(), 'index.json'), 'utf8')) as { shards: unknown[] };
    assert.deepEqual(index.shards, []);
    const skipped: boolean[] = [];
    await writeTokenCounts(manifest, {
      resolution: RES,
      concurrency: 1,
      onShard: (_d, _t, s) => skipped.push(s),
    });
    assert.deepEqual(skipped, [true, false, false, true, false, false]);
    assert.deepEqual(await sidecarFiles(), reference);
    // Other settings start over: no file of the 'data' counts is mixed into the 'front' ones.
    await writeTokenCounts(manifest, { resolution: RES, imageTokenPosition: 'front' });
    const front = await sidecarFiles();
    assert.notEqual(front.get('index.json'), reference.get('index.json'));
  });

  it('on BullMQ: two worker processes, one killed inside a shard job, write the same bytes', async () => {
    await rm(sidecar(), { recursive: true, force: true });
    const start = (name: string) =>
      spawnWorker(
        name,
        join(import.meta.dirname, 'tokens-worker.ts'),
        [JSON.stringify({ redis: suite.redis.url, name })],
        { readyText: /^ready$/m },
      );
    const workers: WorkerProcess[] = [await start('t0'), await start('t1')];
    suite.fleet.push(...workers);
    const task = await tokenCountTask({ manifest, resolution: RES, imageTokenPosition: 'data' });
    assert.equal((await taskStatus(suite.queues.redis, task)).state, 'absent');
    assert.equal(tokensCli().code, 1, 'nothing submitted yet: --status exits 1');
    await submitTask(suite.queues.redis, task, { attempts: 5, backoffMs: 100 });
    // Kill the worker that starts unit 2, inside its 500 ms wait; a third worker joins.
    let killed = '';
    for (let i = 0; i < 6000 && !killed; i++) {
      for (const w of workers)
        if (new RegExp(`tokens 2 of ${task.id}: started`).test(w.log())) {
          await w.kill9();
          killed = w.name;
        }
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(killed, `a worker started unit 2:\n${workers.map((w) => w.log()).join('\n')}`);
    suite.fleet.push(await start('t2'));
    const progress: number[] = [];
    await followTask(suite.queues.redis, task, { pollMs: 50, onUnits: (d) => progress.push(d) });
    assert.equal(progress.at(-1), SHARDS.length);
    assert.deepEqual(await taskStatus(suite.queues.redis, task), {
      id: task.id,
      state: 'completed',
      done: SHARDS.length,
      total: SHARDS.length,
      failures: [],
    });
    const cli = tokensCli();
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(cli.stdout, `tokens ${task.id}: completed, ${SHARDS.length}/${SHARDS.length} shards\n`);
    assert.deepEqual(await sidecarFiles(), reference);
    const logs = suite.fleet.map((w) => w.log()).join('\n');
    assert.ok(
      (logs.match(new RegExp(`tokens 2 of ${task.id}: started`, 'g')) ?? []).length >= 2,
      `unit 2 ran again after the kill:\n${logs.slice(-3000)}`,
    );
    // Submitting the finished task again counts nothing: every unit is a skip.
    await submitTask(suite.queues.redis, task, DEFAULT_RETRY);
    await followTask(suite.queues.redis, task, { pollMs: 50 });
    assert.deepEqual(await sidecarFiles(), reference);
  });
  it('on BullMQ: --cancel removes a detached count at once, and a running shard once it ends', async () => {
    // Only the stand-in below may take jobs: the earlier test's workers stop first.
    for (const w of suite.fleet.splice(0)) await w.stop();
    await rm(sidecar(), { recursive: true, force: true });
    const task = await tokenCountTask({ manifest, resolution: RES, imageTokenPosition: 'data' });
    await submitTask(suite.queues.redis, task, { attempts: 1, backoffMs: 100 });
    // A stand-in worker takes one unit and holds it until released; it refuses a finish job.
    let release = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    let running = '';
    const connection = new Redis(suite.redis.url, { maxRetriesPerRequest: null });
    const worker = new Worker(
      taskQueueName('tokens'),
      async (job) => {
        if (job.name !== 'unit') throw new Error('the stand-in runs units only');
        running = job.id ?? '';
        await held;
      },
      { connection, concurrency: 1 },
    );
    worker.on('error', () => undefined);
    try {
      for (let i = 0; i < 500 && !running; i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(running, 'the stand-in worker took a unit');
      const first = await cancelTask(suite.queues.redis, task, { waitMs: 0 });
      assert.deepEqual(first, { found: true, completed: false, stillActive: [running] });
      const queue = new Queue(taskQueueName('tokens'), { connection: suite.queues.redis });
      try {
        const counts = await queue.getJobCounts('wait', 'delayed', 'prioritized');
        assert.deepEqual(
          counts,
          { wait: 0, delayed: 0, prioritized: 0 },
          'every waiting unit is gone at once',
        );
        release();
        assert.deepEqual(await cancelTask(suite.queues.redis, task, { waitMs: 10_000 }), {
          found: true,
          completed: false,
          stillActive: [],
        });
        const left = await queue.getJobCounts();
        assert.ok(
          Object.values(left).every((n) => n === 0),
          `jobs left: ${JSON.stringify(left)}`,
        );
      } finally {
        await queue.close();
      }
      assert.equal((await taskStatus(suite.queues.redis, task)).state, 'absent');
      const again = tokensCli('--cancel');
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stderr, /not on this Redis, nothing to cancel/);
    } finally {
      release();
      await worker.close();
      connection.disconnect();
    }
  });
});
