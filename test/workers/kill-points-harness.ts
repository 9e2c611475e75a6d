// The harness of the kill-point tests: kill -9 of a real `mixforge worker` at job boundaries of real builds, over
// several seeds: the worker is the child the launcher (bin/mixforge.js) re-runs itself as, and it is killed when its
// own log shows a job boundary (a job just started, or its work is committed but not yet recorded as completed in
// Redis). After every build, each file the build published must be byte-identical to the in-process build of the
// same spec, and no temp file may be left. One suite per test file, so each stays within the runner's time limit.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { shippedSpecPath } from '../../demo/spec-overrides.ts';
import { startRedis, type TestRedis } from '../../dev/redis-server.ts';
import { loadSpec } from '../../manifests/spec.ts';
import { makeBuildContext } from '../../pipelines/context.ts';
import { runBuildInProcess } from '../../pipelines/executor-inprocess.ts';
import { runBuildOnQueue } from '../../workers/executor-bullmq.ts';
import { demoDataDir } from '../helpers/demo-data.ts';

const LAUNCHER = join(import.meta.dirname, '..', '..', 'bin', 'mixforge.js');

/** Where a worker dies: when its log says job `step n` started, or finished its work (`done`/`already done`). */
export interface KillPoint {
  step: string;
  n: number;
  at: 'start' | 'done';
}

/**
 * Per seed, kill points spread over the graph: mid-job kills (start) and kills between a job's committed work and its
 * completion in Redis (done) — for a head that is after it added the next level, the window where a late rerun
 * meets a build that went on without it.
 */
export interface Plan {
  seed: number;
  kills: KillPoint[];
  /** The workers' lock duration (how long a killed worker's job waits before it is rerun); default 1000 ms. */
  lockMs?: number;
  /** The killed head job must come back only after finalize: the late rerun of docs/workers.md (kill -9, 1). */
  lateRerunOf?: string;
  /** `--queues` of the two workers (default: all steps each). */
  queues?: [string, string];
  /** `--set` overrides of the demo spec besides the seed. */
  set?: string[];
}

/**
 * What a worker killed inside `writeAtomic` leaves next to the file it was writing: a partial temp file named by its
 * pid (core/storage/local.ts). The write itself lasts milliseconds, too short to aim a kill at from outside, so a
 * kill at the start of a job that publishes a file also leaves the temp file such a kill would have left.
 */
const PUBLISHES: Record<string, (n: number) => string> = {
  write: (n) => `shards/shard-${String(n).padStart(5, '0')}.parquet`,
  finalize: () => 'manifest.json',
};

interface Worker {
  name: string;
  queues: string | undefined;
  launcher: ChildProcess;
  log: string;
  exited: Promise<void>;
  /** Its worker was killed: lines it wrote just before (still in the pipe) aim no further kill. */
  killed: boolean;
}

function childPid(pid: number): number | undefined {
  try {
    const first = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0];
    return first ? Number(first) : undefined;
  } catch {
    return undefined;
  }
}

/** Every file under `dir` (the build's own `_build/` aside) with its sha256, and every temp file anywhere. */
async function published(dir: string): Promise<{ files: Map<string, string>; temps: string[] }> {
  const files = new Map<string, string>();
  const temps: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const rel = relative(dir, join(e.parentPath, e.name));
    if (/\.tmp-/.test(e.name)) temps.push(rel);
    if (rel.startsWith('_build/')) continue;
    files.set(
      rel,
      createHash('sha256')
        .update(await readFile(join(dir, rel)))
        .digest('hex'),
    );
  }
  return { files, temps };
}

export function killPointsSuite(title: string, plans: readonly Plan[]): void {
  describe(title, () => {
    let redis: TestRedis | undefined;
    let root = '';
    let data = '';
    const workers: Worker[] = [];
    let spawned = 0;
    /** What the current build does with a worker's log line (workers outlive builds). */
    let onLine: (w: Worker, line: string) => void = () => undefined;

    /** The launcher with an untuned environment, so it re-runs itself: the worker proper is its child. */
    let lockMs = 1000;
    let fleetQueues: [string, string] | undefined;
    const startWorker = (url: string, queues?: string): Worker => {
      // A job's `done` line comes a few ms before BullMQ records it completed: held 300 ms there, a kill aimed at
      // that line lands in the window every time (workers/processor.ts holdAfterDoneMs).
      const env: NodeJS.ProcessEnv = { ...process.env, MIXFORGE_TEST_HOLD_AFTER_DONE_MS: '300' };
      delete env.GLIBC_TUNABLES;
      const name = `w${spawned++}`;
      const launcher = spawn(
        process.execPath,
        // Short locks and stalled checks: a killed worker's job comes back within about 1.5 s.
        [
          LAUNCHER,
          'worker',
          '--redis',
          url,
          '--name',
          name,
          '--lock-duration',
          String(lockMs),
          '--stalled-interval',
          '250',
          '--max-stalled',
          '20',
          ...(queues ? ['--queues', queues] : []),
        ],
        { env, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const w: Worker = {
        name,
        queues,
        launcher,
        log: '',
        exited: new Promise((r) => launcher.once('exit', () => r())),
        killed: false,
      };
      let partial = '';
      const onData = (d: Buffer) => {
        w.log = (w.log + d.toString('utf8')).slice(-50_000);
        partial += d.toString('utf8');
        const lines = partial.split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) onLine(w, line);
      };
      launcher.stdout?.on('data', onData);
      launcher.stderr?.on('data', onData);
      return w;
    };

    before(async () => {
      [redis, data, root] = await Promise.all([
        startRedis(),
        demoDataDir(),
        mkdtemp(join(tmpdir(), 'mixforge-kill-points-')),
      ]);
    });
    after(async () => {
      for (const w of workers) w.launcher.kill('SIGKILL');
      await Promise.all(workers.map((w) => w.exited));
      await redis?.stop();
      await rm(root, { recursive: true, force: true });
    });

    it('every build byte-identical to the in-process build, with no temp file left', async (t) => {
      const url = redis?.url ?? '';
      for (const plan of plans) {
        const spec = await loadSpec(shippedSpecPath('demo'), {
          env: { MIXFORGE_DEMO_DATA: data },
          set: [`seed=${plan.seed}`, ...(plan.set ?? [])],
        });
        const ref = makeBuildContext(spec, join(root, `ref-${plan.seed}`));
        await runBuildInProcess(ref, { concurrency: 2 });
        const ctx = makeBuildContext(spec, join(root, `fleet-${plan.seed}`));

        const pending = [...plan.kills];
        const killed: string[] = [];
        /** Job boundaries of this build in the order the workers logged them: `<step> <n> <started|done|already done>`. */
        const seen: string[] = [];
        onLine = (w: Worker, line: string) => {
          const m = new RegExp(`\\] ([\\w-]+) (\\d+) of ${ctx.buildId}: (started|done|already done)`).exec(
            line,
          );
          if (!m) return;
          seen.push(`${m[1]} ${m[2]} ${m[3]}`);
          if (w.killed) return;
          const at = m[3] === 'started' ? 'start' : 'done';
          const i = pending.findIndex((k) => k.step === m[1] && k.n === Number(m[2]) && k.at === at);
          if (i < 0) return;
          const [k] = pending.splice(i, 1);
          const pid = w.launcher.pid === undefined ? undefined : childPid(w.launcher.pid);
          assert.ok(pid, `${w.name} runs its worker as a child of the launcher`);
          process.kill(pid, 'SIGKILL');
          w.killed = true;
          killed.push(`${k.step} ${k.n} ${k.at} (${w.name})`);
          const published = PUBLISHES[k.step];
          if (k.at === 'start' && published) {
            const file = join(ctx.out, published(k.n));
            mkdirSync(dirname(file), { recursive: true });
            writeFileSync(`${file}.tmp-${pid}-0`, 'PAR1 half a shard');
          }
          // The launcher dies of its child's signal; a replacement keeps two workers in the fleet.
          workers.push(startWorker(url, w.queues));
        };
        const alive = () =>
          workers.filter((w) => w.launcher.exitCode === null && w.launcher.signalCode === null);
        if ((plan.lockMs ?? 1000) !== lockMs || plan.queues !== fleetQueues) {
          // Idle between builds: the fleet is replaced by one with this plan's lock duration.
          const old = alive();
          for (const w of old) w.launcher.kill('SIGKILL');
          await Promise.all(old.map((w) => w.exited));
          lockMs = plan.lockMs ?? 1000;
          fleetQueues = plan.queues;
        }
        for (const q of fleetQueues ?? [undefined, undefined])
          if (alive().length < 2) workers.push(startWorker(url, q));
        await Promise.all(
          workers.map(
            (w) =>
              new Promise<void>((resolve) => {
                const check = setInterval(() => {
                  if (
                    /serving mixforge-/.test(w.log) ||
                    w.launcher.exitCode !== null ||
                    w.launcher.signalCode !== null
                  ) {
                    clearInterval(check);
                    resolve();
                  }
                }, 50);
              }),
          ),
        );

        const t0 = Date.now();
        // A build that does not finish fails the test with what the workers said, rather than hanging it.
        let timer: NodeJS.Timeout | undefined;
        const manifest = await Promise.race([
          runBuildOnQueue(ctx, { redis: url, pollMs: 100 }),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () =>
                reject(
                  new Error(
                    `seed ${plan.seed}: build not done after 120 s; killed at ${killed.join(', ')}; seen ${seen.join(', ')}\n` +
                      workers.map((w) => `--- ${w.name}\n${w.log.slice(-3000)}`).join('\n'),
                  ),
                ),
              120_000,
            );
          }),
        ]).finally(() => clearTimeout(timer));
        t.diagnostic(
          `seed ${plan.seed}: ${((Date.now() - t0) / 1000).toFixed(1)} s, killed at ${killed.join(', ')}`,
        );
        assert.ok(manifest, 'the followed build returns its manifest');
        assert.deepEqual(pending, [], `kill points never reached (seed ${plan.seed})`);
        if (plan.lateRerunOf) {
          const finalized = seen.indexOf('finalize 0 done');
          const rerun = seen.indexOf(`${plan.lateRerunOf} already done`);
          assert.ok(
            finalized >= 0 && rerun > finalized,
            `expected ${plan.lateRerunOf} rerun after finalize: ${seen.join(', ')}`,
          );
        }

        const [mine, theirs] = await Promise.all([published(ctx.out), published(ref.out)]);
        assert.ok(
          [...theirs.files.keys()].some((k) => k.startsWith('shards/')),
          'the reference has shards',
        );
        assert.deepEqual(mine.temps, [], `temp files left by killed writes (seed ${plan.seed})`);
        assert.deepEqual(
          [...mine.files].sort(),
          [...theirs.files].sort(),
          `seed ${plan.seed}: published files differ from the in-process build`,
        );
      }
    });
  });
}
