// What every build does around its jobs: it never deletes or overwrites a file it did not write, says when it
// resumes, stops cleanly when interrupted (no temp files left), and warns about a take larger than its component.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { ForeignFilesError } from '../../core/foreign-files.ts';
import { shippedSpecPath } from '../../demo/spec-overrides.ts';
import { loadSpec } from '../../manifests/spec.ts';
import type { MixtureSpec } from '../../manifests/spec-schema.ts';
import { BuildInterruptedError } from '../../pipelines/build-envelope.ts';
import { makeBuildContext } from '../../pipelines/context.ts';
import { type BuildEvent, noticeLine } from '../../pipelines/events.ts';
import { runBuildInProcess } from '../../pipelines/executor-inprocess.ts';
import { demoDataDir, spawnSlowDemoBuild } from '../helpers/demo-data.ts';

let tmp = '';
let data = '';
let spec: MixtureSpec;

/** Every file under `dir`, relative, with `/`. */
function filesUnder(dir: string, prefix = ''): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .flatMap((n) =>
      statSync(join(dir, n)).isDirectory() ? filesUnder(join(dir, n), `${prefix}${n}/`) : [`${prefix}${n}`],
    );
}

/** sha256 of the published files: manifest, shards, quarantine table. */
function published(out: string): Record<string, string> {
  const files = filesUnder(out).filter(
    (f) => f === 'manifest.json' || /^shards\/shard-\d+\.parquet$/.test(f) || f.startsWith('quarantine/'),
  );
  return Object.fromEntries(
    files.map((f) => [
      f,
      createHash('sha256')
        .update(readFileSync(join(out, f)))
        .digest('hex'),
    ]),
  );
}

async function build(out: string, s: MixtureSpec, opts: { force?: boolean; signal?: AbortSignal } = {}) {
  const events: BuildEvent[] = [];
  const manifest = await runBuildInProcess(makeBuildContext(s, out), {
    concurrency: 2,
    onEvent: (e) => events.push(e),
    ...opts,
  });
  return { manifest, events };
}

before(async () => {
  data = await demoDataDir();
  tmp = await mkdtemp(join(tmpdir(), 'mixforge-envelope-'));
  const demo = await loadSpec(shippedSpecPath('demo'), { env: { MIXFORGE_DEMO_DATA: data } });
  // Two parquet components keep the builds here small: recap (take.count 20) and pretrain (no take).
  spec = { ...demo, components: demo.components.filter((c) => c.name === 'recap' || c.name === 'pretrain') };
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('build envelope', () => {
  it('stops before touching anything when --out holds a file it did not write, and keeps it with force', async () => {
    const out = join(tmp, 'foreign');
    await mkdir(join(out, 'shards'), { recursive: true });
    await writeFile(join(out, 'shards', 'mine.parquet'), 'the user’s own file');
    // A shard name of its own from an earlier, larger build: the build may remove it.
    await writeFile(join(out, 'shards', 'shard-00099.parquet'), 'stale shard');

    await assert.rejects(build(out, spec), (err: unknown) => {
      assert.ok(err instanceof ForeignFilesError);
      assert.match(
        err.message,
        /--out .*foreign holds files mixforge did not write: shards\/mine\.parquet\./,
      );
      assert.match(err.message, /--force/);
      return true;
    });
    assert.deepEqual(
      filesUnder(out),
      ['shards/mine.parquet', 'shards/shard-00099.parquet'],
      'nothing touched',
    );

    const { manifest } = await build(out, spec, { force: true });
    assert.equal(await readFile(join(out, 'shards', 'mine.parquet'), 'utf8'), 'the user’s own file');
    assert.equal(
      existsSync(join(out, 'shards', 'shard-00099.parquet')),
      false,
      'its own stale shard removed',
    );
    assert.deepEqual(
      filesUnder(join(out, 'shards')),
      ['mine.parquet', ...manifest.shards.map((s) => s.path.replace('shards/', ''))].sort(),
    );
    // A rerun into the same folder still refuses: the file is still not the build's.
    await rm(join(out, '_build', 'done'), { recursive: true });
    await assert.rejects(build(out, spec), ForeignFilesError);
  });

  it('warns when take.count asks for more than a component has, and records asked / available / kept', async () => {
    const big: MixtureSpec = {
      ...spec,
      components: spec.components.map((c) => (c.name === 'recap' ? { ...c, take: { count: 1000 } } : c)),
    };
    const { manifest, events } = await build(join(tmp, 'take'), big);
    const recap = manifest.components.find((c) => c.name === 'recap');
    const pretrain = manifest.components.find((c) => c.name === 'pretrain');
    assert.ok(recap && pretrain);
    assert.ok(recap.counts.kept > 0 && recap.counts.kept < 1000);
    assert.deepEqual(recap.take, { asked: 1000, available: recap.counts.kept, kept: recap.counts.kept });
    assert.equal(pretrain.take, undefined, 'no take, nothing recorded');
    const warnings = events.filter((e) => e.type === 'warning').map(noticeLine);
    assert.deepEqual(warnings, [
      `warning: component 'recap': take.count asks for 1000 samples, it has ${recap.counts.kept}; kept ${recap.counts.kept}`,
    ]);
    // A take the component can fill records nothing (the manifest of such a build is unchanged).
    const { manifest: small, events: quiet } = await build(join(tmp, 'take-small'), spec);
    assert.equal(small.components.find((c) => c.name === 'recap')?.take, undefined);
    assert.equal(quiet.filter((e) => e.type === 'warning').length, 0);
  });

  it('an interrupted build leaves no temp files; the rerun says it resumes and gives the same bytes', async () => {
    const clean = join(tmp, 'clean');
    const cleanRun = await build(clean, spec);
    assert.equal(cleanRun.events.filter((e) => e.type === 'resume').length, 0, 'a first run does not resume');

    const out = join(tmp, 'interrupted');
    const stop = new AbortController();
    const events: BuildEvent[] = [];
    await assert.rejects(
      runBuildInProcess(makeBuildContext(spec, out), {
        concurrency: 2,
        signal: stop.signal,
        onEvent: (e) => {
          events.push(e);
          // Ctrl-C once the first ingest job is done: others are running or waiting.
          if (e.type === 'job-done' && e.stage === 'ingest') stop.abort();
        },
      }),
      BuildInterruptedError,
    );
    assert.equal(events.filter((e) => e.type === 'stage-start' && e.stage === 'select').length, 0);
    assert.deepEqual(
      filesUnder(out).filter((f) => f.includes('.tmp')),
      [],
    );
    assert.equal(existsSync(join(out, 'manifest.json')), false);
    // What a kill -9 in mid-write leaves: the next run removes it (and does not take it for a user's file).
    await mkdir(join(out, 'shards'), { recursive: true });
    await writeFile(join(out, 'shards', 'shard-00000.parquet.tmp-4242-7'), 'half a shard');

    const rerun = await build(out, spec);
    const resume = rerun.events.filter((e) => e.type === 'resume');
    assert.equal(resume.length, 1);
    const r = resume[0];
    assert.ok(r.type === 'resume' && r.done >= 2, 'plan and at least one ingest job were done');
    assert.match(noticeLine(r) ?? '', /^resuming: \d+ of \d+\+? jobs done$/);
    const skipped = rerun.events.filter((e) => e.type === 'job-done' && !e.ran).length;
    assert.equal(skipped, r.done, 'every job counted as done was skipped');
    assert.deepEqual(
      filesUnder(out).filter((f) => f.includes('.tmp')),
      [],
    );
    assert.deepEqual(published(out), published(clean));
  });
  it('mixforge build stops on SIGTERM: says how to resume, exits 130, leaves no temp file', async () => {
    const out = join(tmp, 'sigterm');
    const child = spawnSlowDemoBuild(data, out, 'pipe');
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    // Small partitions: after the 4th of some sixty ingest jobs the build is far from done.
    let ingested = 0;
    for await (const line of createInterface({ input: child.stdout })) {
      const e = JSON.parse(line) as BuildEvent;
      if (e.type === 'job-done' && e.stage === 'ingest' && ++ingested === 4) child.kill('SIGTERM');
    }
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /interrupted — rerun the same command to resume/);
    assert.equal(existsSync(join(out, 'manifest.json')), false);
    assert.deepEqual(
      filesUnder(out).filter((f) => f.includes('.tmp')),
      [],
    );
  });
});
