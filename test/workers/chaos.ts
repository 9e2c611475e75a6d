// Kills workers in the middle of their jobs while a build runs, respawning a replacement each time.
import type { BuildQueues } from '../../workers/status.ts';
import { type WorkerProcess, workersWithActiveJobs } from './fleet.ts';

/**
 * Until `kills` workers have been killed with SIGKILL (or the build ends): waits for a worker that holds an active
 * job of the build, kills it, and spawns a replacement. Returns the names of the killed workers once every
 * replacement is ready.
 */
export async function killWorkersDuringBuild(
  queues: BuildQueues,
  buildId: string,
  fleet: WorkerProcess[],
  respawn: (i: number) => Promise<WorkerProcess>,
  /** runningFor: only kill a worker whose job has run between these many ms (it must be mid-job). */
  opts: { kills: number; until: Promise<unknown>; pauseMs: number; runningFor?: readonly [number, number] },
): Promise<string[]> {
  let ended = false;
  opts.until.then(
    () => {
      ended = true;
    },
    () => {
      ended = true;
    },
  );
  const killed: string[] = [];
  const replacements: Promise<void>[] = [];
  let spawned = 0;
  while (killed.length < opts.kills && !ended) {
    const busy = new Set(await workersWithActiveJobs(queues, buildId, opts.runningFor));
    const victims = fleet.filter((w) => busy.has(w.name));
    const victim = victims[Math.floor(Math.random() * victims.length)];
    if (!victim) {
      await new Promise((r) => setTimeout(r, 20));
      continue;
    }
    await victim.kill9();
    killed.push(victim.name);
    fleet.splice(fleet.indexOf(victim), 1);
    // The replacement starts in the background (seconds on a loaded machine): the next kill need not wait for it,
    // or a short build ends before the planned kills land.
    replacements.push(respawn(spawned++).then((w) => void fleet.push(w)));
    await new Promise((r) => setTimeout(r, opts.pauseMs));
  }
  // Every replacement joins the fleet before returning, so the suite's teardown stops it too.
  await Promise.all(replacements);
  return killed;
}
