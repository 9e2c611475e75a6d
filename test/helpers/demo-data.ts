// The demo data, generated once per version of the generator and shared by the test files that need it.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { generateDemoData } from '../../demo/generate.ts';

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
