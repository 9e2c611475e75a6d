// The demo data, generated once per version of the generator and shared by the test files that need it.
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { generateDemoData } from '../../demo/generate.ts';
import { shippedSpecPath } from '../../demo/spec-overrides.ts';

function filesUnder(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((n) => {
      const p = join(dir, n);
      return statSync(p).isDirectory() ? filesUnder(p) : [p];
    });
}

/** A folder with the demo data; keyed by a hash of demo/ so a changed generator regenerates it. */
export async function demoDataDir(): Promise<string> {
  const h = createHash('sha256');
  for (const f of filesUnder(resolve('demo'))) h.update(f).update(readFileSync(f));
  const dir = resolve('.cache', `demo-data-${h.digest('hex').slice(0, 12)}`);
  if (existsSync(join(dir, '.complete'))) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await generateDemoData(tmp);
  try {
    await rename(tmp, dir);
  } catch {
    // Another test process finished first: use its copy.
    await rm(tmp, { recursive: true, force: true });
  }
  return dir;
}

/**
 * `mixforge build` of the demo spec into `out` as a child process, slowed down to many small jobs (one job at a
 * time, partitions of 3 records): tests that signal or kill it mid-build have time to land.
 */
export function spawnSlowDemoBuild(
  data: string,
  out: string,
  stderr: 'pipe',
): ChildProcessByStdio<null, Readable, Readable>;
export function spawnSlowDemoBuild(
  data: string,
  out: string,
  stderr: 'inherit',
): ChildProcessByStdio<null, Readable, null>;
export function spawnSlowDemoBuild(data: string, out: string, stderr: 'pipe' | 'inherit') {
  return spawn(
    process.execPath,
    [
      ...['--import', 'tsx', 'cli/main.ts', 'build', shippedSpecPath('demo'), '--out', out, '--json'],
      ...['--concurrency', '1', '--partition-records', '3', '--partition-bytes', '1500'],
    ],
    { env: { ...process.env, MIXFORGE_DEMO_DATA: data }, stdio: ['ignore', 'pipe', stderr] },
  );
}
