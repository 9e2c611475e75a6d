// The build CLI as a user runs it: plan, build (--json events), verify, inspect, report, and spec errors.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { grainyPhoto } from '../../demo/images.ts';
import { shippedSpecPath } from '../../demo/spec-overrides.ts';
import { STAGES } from '../../pipelines/graph.ts';
import { demoDataDir } from '../helpers/demo-data.ts';
import { cutJpeg, damaged, jpegScanStart } from '../transforms/image-corpus.ts';

let data = '';
let tmp = '';
function mixforge(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], {
    encoding: 'utf8',
    env: { ...process.env, MIXFORGE_DEMO_DATA: data, ...env },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(async () => {
  data = await demoDataDir();
  tmp = await mkdtemp(join(tmpdir(), 'mixforge-cli-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('mixforge plan/build/verify/inspect/report', () => {
  it('plan prints per-component record counts without building', () => {
    const r = mixforge(['plan', shippedSpecPath('demo'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout) as {
      components: { name: string; records: number; expectedRows: number }[];
    };
    const by = Object.fromEntries(plan.components.map((c) => [c.name, c]));
    assert.equal(by.recap.expectedRows, 20, 'take count');
    assert.equal(by.llava665k.expectedRows, 2 * by.llava665k.records, 'repeat 2');
    assert.ok(plan.components.every((c) => c.records > 0));
    const text = mixforge(['plan', shippedSpecPath('demo')]);
    assert.match(text.stdout, /recap\s+llava-recap\s+files\s+1\s+records \d+/);
  });

  it('build → verify → inspect → report', () => {
    const out = join(tmp, 'out');
    const b = mixforge(['build', shippedSpecPath('demo'), '--out', out, '--json', '--concurrency', '2']);
    assert.equal(b.code, 0, b.stderr);
    const events = b.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; stage?: string });
    assert.deepEqual(
      events.filter((e) => e.type === 'stage-done').map((e) => e.stage),
      // The graph's order, which test/pipelines/graph.test.ts pins.
      [...STAGES],
    );
    assert.equal(events.at(-1)?.type, 'build-done');
    const v = mixforge(['verify', out]);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /ok/);
    const i = mixforge(['inspect', out, '--samples', '2', '--source', 'llava-recap']);
    assert.equal(i.code, 0, i.stderr);
    assert.match(i.stdout, /rows \d+\s+shards \d+/);
    assert.match(i.stdout, /recap\s+\d+\s+20\s+20/);
    assert.equal((i.stdout.match(/^── recap\//gm) ?? []).length, 2, 'two recap samples printed');
    const rep = mixforge(['report', out]);
    assert.equal(rep.code, 0, rep.stderr);
    assert.ok(existsSync(join(out, 'report.html')));
  });

  it('builds the same shards and quarantine whichever decoder checks the JPEGs (libjpeg-turbo or sharp)', async () => {
    // LLaVA-Pretrain records over a folder of JPEGs, half of them damaged after an intact header, so each reaches
    // the decode check.
    const dir = join(tmp, 'decoders');
    await mkdir(join(dir, 'images'), { recursive: true });
    const records = [];
    for (let i = 0; i < 18; i++) {
      const photo = await grainyPhoto({
        name: `decoders-${i}`,
        width: 96 + i * 7,
        height: 64 + i * 5,
        sigma: 12,
      });
      let jpeg: Buffer = Buffer.from(await photo.jpeg({ quality: 90 }).toBuffer());
      // Odd ones lose the end of their entropy-coded data (the EOI marker put back); some of those also get flipped
      // bytes, which libjpeg often decodes through without a warning.
      if (i % 4 === 1) jpeg = damaged(jpeg, jpegScanStart(jpeg) + 10, 0, 48);
      const bytes = i % 2 === 1 ? cutJpeg(jpeg, [0.9, 0.6, 0.3][i % 3]) : jpeg;
      await writeFile(join(dir, 'images', `${i}.jpg`), bytes);
      records.push({
        id: `d${i}`,
        image: `${i}.jpg`,
        conversations: [
          { from: 'human', value: '<image>\nDescribe it.' },
          { from: 'gpt', value: `Photo ${i}.` },
        ],
      });
    }
    await writeFile(join(dir, 'pretrain.json'), JSON.stringify(records));
    const spec = join(dir, 'spec.yaml');
    await writeFile(
      spec,
      [
        'name: decoders',
        'seed: 1',
        'output:',
        '  shard_rows: 8',
        'components:',
        '  - name: photos',
        '    source:',
        '      format: llava-pretrain',
        `      uris: ["${join(dir, 'pretrain.json')}"]`,
        `      image_root: "${join(dir, 'images')}"`,
        '',
      ].join('\n'),
    );
    const build = (env: Record<string, string>, name: string) => {
      const out = join(dir, name);
      const b = mixforge(['build', spec, '--out', out], env);
      assert.equal(b.code, 0, b.stderr);
      const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as {
        totals: { rows: number; quarantined: number };
        shards: { path: string; sha256: string }[];
        quarantine: { rows: number; sha256: string };
      };
      return { totals: m.totals, shards: m.shards.map((s) => [s.path, s.sha256]), quarantine: m.quarantine };
    };
    const fast = build({}, 'libjpeg-turbo');
    const slow = build({ MIXFORGE_JPEG_DECODER: 'sharp' }, 'sharp');
    assert.deepEqual(fast, slow);
    assert.ok(
      fast.quarantine.rows > 0 && fast.totals.rows >= 9,
      `kept ${fast.totals.rows}, quarantined ${fast.quarantine.rows}`,
    );
  });

  it('without a terminal, build logs a progress line every few seconds and one per stage', () => {
    const out = join(tmp, 'logged');
    // stderr is a pipe here; 0.2 s instead of the default 5 s so a demo build shows several lines.
    const b = mixforge(['build', shippedSpecPath('demo'), '--out', out, '--concurrency', '2'], {
      MIXFORGE_PROGRESS_SECONDS: '0.2',
    });
    assert.equal(b.code, 0, b.stderr);
    const lines = b.stderr.trim().split('\n');
    const periodic = lines.filter((l) => /^[a-z-]+: \d+\/\d+ jobs, \d+ rows, \d+ rows\/s, \d+ s$/.test(l));
    assert.ok(periodic.length >= 2, b.stderr);
    assert.deepEqual(
      lines.flatMap((l) => /^([a-z-]+): \d+ jobs, \d+ rows, [\d.]+ s$/.exec(l)?.[1] ?? []),
      // The graph's order, which test/pipelines/graph.test.ts pins.
      [...STAGES],
    );
    assert.match(lines.at(-1) ?? '', /^build: \d+ rows in \d+ shards, [\d.]+ s$/);
  });

  it('verify exits non-zero when a shard is missing or corrupt; stream refuses a corrupt one', async () => {
    // A copy of the previous test's build (one CLI build fewer; the tests of a describe run in order).
    const out = join(tmp, 'broken');
    await cp(join(tmp, 'logged'), out, { recursive: true });
    await rm(join(out, 'shards', 'shard-00001.parquet'));
    const v = mixforge(['verify', out]);
    assert.equal(v.code, 1);
    assert.match(v.stderr, /shards\/shard-00001\.parquet: missing/);
    // One byte flipped in the middle of shard 0 (inside a row group): verify names the group, stream refuses it.
    const shard0 = join(out, 'shards', 'shard-00000.parquet');
    const bytes = readFileSync(shard0);
    bytes[bytes.length >> 1] ^= 0x01;
    await writeFile(shard0, bytes);
    assert.match(
      mixforge(['verify', out]).stderr,
      /shards\/shard-00000\.parquet: row group \d+ sha256 [0-9a-f]{64}, manifest says/,
    );
    const st = mixforge(['stream', out]);
    assert.equal(st.code, 1);
    assert.match(
      st.stderr,
      /shard-00000\.parquet: row group \d+ \(bytes \d+–\d+\) has sha256 .*corrupt on storage/,
    );
  });

  it('a bad spec fails with the file, the field path and the expectation', async () => {
    const bad = join(tmp, 'bad.yaml');
    await writeFile(
      bad,
      'name: x\nseed: 1\noutput: {shard_rows: 10}\ncomponents:\n  - name: a\n    source: {format: llava-recap, uris: [x]}\n    take: {count: -3}\n',
    );
    const r = mixforge(['build', bad, '--out', join(tmp, 'never')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad\.yaml.*components\[0\]\.take\.count.*positive/s);
    const s = mixforge(['plan', shippedSpecPath('demo'), '--set', 'components.nosuch.take.count=3']);
    assert.equal(s.code, 1);
    assert.match(s.stderr, /nosuch/);
  });
});
