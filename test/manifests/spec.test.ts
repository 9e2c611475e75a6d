// The mixture spec loader: a valid spec with its defaults, one test per error family (each naming file, field
// path and line), env expansion, --set overrides, and the stable spec hash.
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these strings are spec text holding ${VAR} references
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { canonicalJson } from '../../core/canonical-json.ts';
import { SpecError } from '../../core/errors.ts';
import { loadSpec, parseSpec } from '../../manifests/spec.ts';
import { SpecValidationError } from '../../manifests/spec-errors.ts';
import { type MixtureSpec, specHash } from '../../manifests/spec-schema.ts';

const FILE = 'mix.yaml';

/** The issue's example spec. Line numbers below refer to this text. */
const EXAMPLE = `name: demo-it
seed: 17
output: { shard_rows: 1000, compression: zstd }
images: { max_side: 2048 }
components:
  - name: recap
    source: { format: llava-recap, uris: ["\${DATA}/recap/data/*.parquet"] }
    transform: triplet
    take: { count: 30 }
  - name: cambrian
    source: { format: cambrian, uris: ["\${DATA}/cambrian/*.jsonl"], image_root: "\${DATA}/cambrian/images" }
    filters: { image_only: true }
  - name: docmatix
    source: { format: docmatix, uris: ["s3://my-bucket/docmatix/data/*.parquet"] }
    filters: { max_images: 1 }
    take: { fraction: 0.5 }
`;

const ENV = { DATA: '/data' };

function parse(text: string, env: Record<string, string> = ENV, set: string[] = []): MixtureSpec {
  return parseSpec(text, { file: FILE, env, set });
}

/** Asserts a SpecError from `fn` naming the file and, for each expected issue, its path, message and line. */
function rejects(
  fn: () => unknown,
  expected: { path: string; message: RegExp; line?: number }[],
): SpecValidationError | SpecError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof SpecError, `expected a SpecError, got ${String(caught)}`);
  assert.equal(caught.file, FILE);
  assert.ok(caught.message.includes(FILE), caught.message);
  const issues =
    caught instanceof SpecValidationError
      ? caught.issues
      : [{ path: caught.path, message: caught.message, line: undefined as number | undefined }];
  for (const e of expected) {
    const hit = issues.find((i) => i.path === e.path && e.message.test(i.message));
    assert.ok(hit, `no issue at ${e.path} matching ${e.message}; got:\n${caught.message}`);
    if (e.line !== undefined) assert.equal(hit.line, e.line, `line of ${e.path}`);
    // The error text itself names the path, so a user sees it without the structured issues.
    assert.ok(caught.message.includes(e.path), caught.message);
  }
  assert.equal(issues.length, expected.length, `issues:\n${caught.message}`);
  return caught;
}

describe('parseSpec: a valid spec', () => {
  it('loads the example with env expanded and defaults filled in', () => {
    const spec = parse(EXAMPLE);
    assert.equal(spec.name, 'demo-it');
    assert.equal(spec.seed, 17);
    assert.deepEqual(spec.output, { shard_rows: 1000, compression: 'zstd' });
    assert.equal(spec.images.max_side, 2048);
    assert.equal(spec.images.jpeg_quality, 95);
    assert.deepEqual(
      spec.components.map((c) => c.name),
      ['recap', 'cambrian', 'docmatix'],
    );
    assert.deepEqual(spec.components[0].source, {
      format: 'llava-recap',
      uris: ['/data/recap/data/*.parquet'],
    });
    assert.equal(spec.components[0].transform, 'triplet');
    assert.deepEqual(spec.components[0].take, { count: 30 });
    assert.equal(spec.components[1].source.image_root, '/data/cambrian/images');
    assert.equal(spec.components[1].filters?.image_only, true);
    assert.deepEqual(spec.components[2].take, { fraction: 0.5 });
    assert.equal(spec.components[2].filters?.max_images, 1);
    // Defaults are filled in, so the resolved spec (and its hash) says exactly what is built.
    assert.deepEqual(spec.images, {
      max_side: 2048,
      jpeg_quality: 95,
      reencode_format: 'jpeg',
      animated: 'first-frame',
      max_pixels: 89_478_485,
      fail_on: 'warning',
    });
    assert.equal(spec.components[2].transform, 'none');
    assert.deepEqual(spec.components[0].filters, {});
    assert.equal(spec.components[0].repeat, 1);
  });

  it('applies output defaults and accepts every compression and repeat', () => {
    for (const compression of ['zstd', 'snappy', 'gzip', 'none']) {
      const spec = parse(EXAMPLE.replace('compression: zstd', `compression: ${compression}`));
      assert.equal(spec.output.compression, compression);
    }
    const spec = parse(
      EXAMPLE.replace('compression: zstd', 'max_shard_bytes: 1000000').replace(
        'take: { count: 30 }',
        'take: { count: 30 }\n    repeat: 3',
      ),
    );
    assert.deepEqual(spec.output, { shard_rows: 1000, compression: 'zstd', max_shard_bytes: 1000000 });
    assert.equal(spec.components[0].repeat, 3);
  });

  it('treats null fields as absent', () => {
    const spec = parse(
      EXAMPLE.replace('take: { count: 30 }', 'take: ~').replace('compression: zstd', 'compression:'),
    );
    assert.equal(spec.components[0].take, undefined);
    assert.equal(spec.output.compression, 'zstd');
  });
});

describe('parseSpec: errors name the file, the field path, the line and what was expected', () => {
  it('unknown fields, at the top level and nested', () => {
    rejects(
      () => parse(`${EXAMPLE}shuffle: true\n`),
      [{ path: 'shuffle', message: /unknown field 'shuffle'/, line: 17 }],
    );
    rejects(
      () => parse(EXAMPLE.replace('take: { count: 30 }', 'take: { count: 30, seed: 4 }')),
      [
        {
          path: 'components[0].take.seed',
          message: /unknown field 'seed'.*expected one of: count, fraction/,
          line: 9,
        },
      ],
    );
    rejects(
      () =>
        parse(
          EXAMPLE.replace('filters: { image_only: true }', 'filters: { image_only: true, imageonly: 1 }'),
        ),
      [{ path: 'components[1].filters.imageonly', message: /unknown field 'imageonly'/, line: 12 }],
    );
  });

  it('bad types', () => {
    rejects(
      () => parse(EXAMPLE.replace('seed: 17', 'seed: seventeen')),
      [{ path: 'seed', message: /expected a whole number, got 'seventeen'/, line: 2 }],
    );
    rejects(
      () => parse(EXAMPLE.replace('shard_rows: 1000', 'shard_rows: 10.5')),
      [{ path: 'output.shard_rows', message: /whole number/, line: 3 }],
    );
    rejects(
      () => parse(EXAMPLE.replace('format: docmatix', 'format: docmatics')),
      [
        {
          path: 'components[2].source.format',
          message: /expected one of .*docmatix.*got 'docmatics'/,
          line: 14,
        },
      ],
    );
    rejects(
      () => parse(EXAMPLE.replace('compression: zstd', 'compression: lz4')),
      [
        {
          path: 'output.compression',
          message: /expected one of zstd, snappy, gzip, none, got 'lz4'/,
          line: 3,
        },
      ],
    );
    rejects(
      () => parse(EXAMPLE.replace('transform: triplet', 'transform: [triplet]')),
      [{ path: 'components[0].transform', message: /expected one of triplet, none, got a list/, line: 8 }],
    );
    rejects(
      () => parse(EXAMPLE.replace('"s3://my-bucket/docmatix/data/*.parquet"', '42')),
      [{ path: 'components[2].source.uris[0]', message: /expected a string, got 42/, line: 14 }],
    );
  });

  it('missing fields', () => {
    rejects(
      () =>
        parse(
          EXAMPLE.replace('output: { shard_rows: 1000, compression: zstd }', 'output: { compression: zstd }'),
        ),
      [{ path: 'output.shard_rows', message: /missing required field/, line: 3 }],
    );
    rejects(
      () => parse(EXAMPLE.replace('seed: 17\n', '')),
      [{ path: 'seed', message: /missing required field/ }],
    );
    rejects(
      () => parse(EXAMPLE.replace('  - name: cambrian\n', '  - transform: triplet\n')),
      [{ path: 'components[1].name', message: /missing required field/, line: 10 }],
    );
    rejects(
      () => parse(EXAMPLE.replace('uris: ["s3://my-bucket/docmatix/data/*.parquet"]', 'uris: []')),
      [{ path: 'components[2].source.uris', message: /at least one URI/, line: 14 }],
    );
    rejects(
      () => parse('name: x\nseed: 1\noutput: { shard_rows: 5 }\ncomponents: []\n'),
      [{ path: 'components', message: /at least one component/, line: 4 }],
    );
  });

  it('bad take and repeat', () => {
    rejects(
      () => parse(EXAMPLE.replace('take: { fraction: 0.5 }', 'take: { fraction: 1.5 }')),
      [{ path: 'components[2].take.fraction', message: /fraction in \(0, 1\]/, line: 16 }],
    );
    rejects(
      () => parse(EXAMPLE.replace('take: { fraction: 0.5 }', 'take: { fraction: 0 }')),
      [{ path: 'components[2].take.fraction', message: /fraction in \(0, 1\]/, line: 16 }],
    );
    rejects(
      () => parse(EXAMPLE.replace('take: { count: 30 }', 'take: { count: -3 }')),
      [{ path: 'components[0].take.count', message: /positive number of samples/, line: 9 }],
    );
    rejects(
      () => parse(EXAMPLE.replace('take: { count: 30 }', 'take: { count: 2.5 }')),
      [{ path: 'components[0].take.count', message: /whole number/, line: 9 }],
    );
    rejects(
      () => parse(EXAMPLE.replace('take: { count: 30 }', 'take: { count: 3, fraction: 0.1 }')),
      [{ path: 'components[0].take', message: /exactly one of \{count: N\} or \{fraction: f\}/, line: 9 }],
    );
    rejects(
      () => parse(EXAMPLE.replace('take: { count: 30 }', 'take: {}')),
      [{ path: 'components[0].take', message: /exactly one of/, line: 9 }],
    );
    rejects(
      () => parse(EXAMPLE.replace('take: { count: 30 }', 'take: 30')),
      [{ path: 'components[0].take', message: /expected a mapping, got 30/, line: 9 }],
    );
    rejects(
      () => parse(EXAMPLE.replace('take: { count: 30 }', 'repeat: 0')),
      [{ path: 'components[0].repeat', message: /at least 1 copy/, line: 9 }],
    );
  });

  it('duplicate and malformed component names', () => {
    rejects(
      () => parse(EXAMPLE.replace('- name: docmatix', '- name: recap')),
      [
        {
          path: 'components[2].name',
          message: /duplicate component name 'recap' \(also components\[0\]\)/,
          line: 13,
        },
      ],
    );
    rejects(
      () => parse(EXAMPLE.replace('- name: docmatix', '- name: Doc.Matix')),
      [{ path: 'components[2].name', message: /lowercase letters, digits/, line: 13 }],
    );
  });

  it('source options: an image root on a parquet format (path-only images), ids: derive, and a bad ids value', () => {
    const spec = parse(
      EXAMPLE.replace(
        'uris: ["s3://my-bucket/docmatix/data/*.parquet"]',
        'uris: ["s3://my-bucket/docmatix/data/*.parquet"], image_root: /img, ids: derive',
      ),
    );
    assert.equal(spec.components[2].source.image_root, '/img');
    assert.equal(spec.components[2].source.ids, 'derive');
    rejects(
      () =>
        parse(
          EXAMPLE.replace(
            'uris: ["s3://my-bucket/docmatix/data/*.parquet"]',
            'uris: ["s3://my-bucket/docmatix/data/*.parquet"], ids: position',
          ),
        ),
      [{ path: 'components[2].source.ids', message: /expected one of derive, got 'position'/, line: 14 }],
    );
  });

  it('unset variables, naming the variable and the line', () => {
    const err = rejects(
      () => parse(EXAMPLE, {}),
      [{ path: 'components[0].source.uris[0]', message: /environment variable DATA is not set.*line 7/ }],
    );
    assert.match(err.message, /^mix\.yaml at components\[0\]\.source\.uris\[0\]: /);
  });

  it('lists every problem, not only the first', () => {
    const err = rejects(
      () =>
        parse(
          EXAMPLE.replace('shard_rows: 1000', 'shard_row: 1000')
            .replace('take: { fraction: 0.5 }', 'take: { fraction: 2 }')
            .replace('seed: 17', 'seed: -1'),
        ),
      [
        { path: 'seed', message: /seed ≥ 0/, line: 2 },
        { path: 'output.shard_row', message: /unknown field 'shard_row'/, line: 3 },
        { path: 'output.shard_rows', message: /missing required field/, line: 3 },
        { path: 'components[2].take.fraction', message: /fraction in/, line: 16 },
      ],
    );
    assert.ok(err instanceof SpecValidationError);
    assert.match(err.message, /^mix\.yaml: 4 problems\n/);
  });

  it('invalid YAML and a document that is not a mapping', () => {
    rejects(() => parse('name: [x\nseed: 1\n'), [{ path: '', message: /invalid YAML/ }]);
    rejects(
      () => parse(`${EXAMPLE}seed: 3\n`),
      [{ path: '', message: /invalid YAML: Map keys must be unique/, line: 17 }],
    );
    rejects(() => parse('uris: [${DATA}/x]\n'), [{ path: '', message: /quote values holding \$\{\.\.\.\}/ }]);
    rejects(() => parse('- just\n- a list\n'), [{ path: '', message: /expected a mapping.*got a list/ }]);
  });
});

describe('parseSpec: env expansion', () => {
  it('uses defaults, nested defaults and typed plain values', () => {
    const text = `name: \${NAME:-mix}
seed: \${SEED:-17}
output: { shard_rows: 10 }
components:
  - name: a
    source:
      format: llava-recap
      uris: ["\${RECAP:-\${ROOT:-data}/recap}/*.parquet"]
    take:
      fraction: \${FRACTION:-0.25}
`;
    const defaults = parse(text, {});
    assert.equal(defaults.name, 'mix');
    assert.equal(defaults.seed, 17);
    assert.deepEqual(defaults.components[0].source.uris, ['data/recap/*.parquet']);
    assert.deepEqual(defaults.components[0].take, { fraction: 0.25 });
    const set = parse(text, { SEED: '5', ROOT: 's3://bucket/root', FRACTION: '1' });
    assert.equal(set.seed, 5);
    assert.deepEqual(set.components[0].source.uris, ['s3://bucket/root/recap/*.parquet']);
    assert.deepEqual(set.components[0].take, { fraction: 1 });
    rejects(
      () => parse(text, { SEED: 'abc' }),
      [{ path: 'seed', message: /expected a whole number, got 'abc'/, line: 2 }],
    );
  });

  it('keeps values with YAML syntax inside a single string', () => {
    const spec = parse(EXAMPLE, { DATA: '/odd: path # with, [brackets]' });
    assert.deepEqual(spec.components[0].source.uris, ['/odd: path # with, [brackets]/recap/data/*.parquet']);
  });
});

describe('parseSpec: --set overrides', () => {
  it('overrides fields after expansion and before validation, components by name or index', () => {
    const spec = parse(EXAMPLE, ENV, [
      'seed=5',
      'components.cambrian.take.count=100',
      'components[0].source.uris=[a.parquet, b.parquet]',
      'components.docmatix.take=null',
      'output.compression=gzip',
    ]);
    assert.equal(spec.seed, 5);
    assert.deepEqual(spec.components[1].take, { count: 100 });
    assert.deepEqual(spec.components[0].source.uris, ['a.parquet', 'b.parquet']);
    assert.equal(spec.components[2].take, undefined);
    assert.equal(spec.output.compression, 'gzip');
  });

  it('validates overridden values and names the --set that caused the problem', () => {
    const err = rejects(
      () => parse(EXAMPLE, ENV, ['components.recap.take.count=many']),
      [
        {
          path: 'components[0].take.count',
          message: /whole number.*\(from --set components\.recap\.take\.count=many\)/,
        },
      ],
    );
    assert.ok(err instanceof SpecValidationError);
    assert.equal(err.issues[0].line, undefined);
    rejects(
      () => parse(EXAMPLE, ENV, ['components.docmatix.take.count=10']),
      [{ path: 'components[2].take', message: /exactly one of/, line: 16 }],
    );
    rejects(
      () => parse(EXAMPLE, ENV, ['output.shards=3']),
      [{ path: 'output.shards', message: /unknown field 'shards'.*from --set output\.shards=3/ }],
    );
  });

  it('rejects an unknown component name, listing the known ones', () => {
    assert.throws(
      () => parse(EXAMPLE, ENV, ['components.recapp.take.count=1']),
      (err: unknown) =>
        err instanceof SpecError &&
        err.file === '--set components.recapp.take.count=1' &&
        /no entry named 'recapp' \(names: recap, cambrian, docmatix\)/.test(err.message),
    );
  });
});

describe('loadSpec', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mixforge-spec-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a spec file and names it in errors', async () => {
    const file = join(dir, 'ok.yaml');
    await writeFile(file, EXAMPLE);
    const spec = await loadSpec(file, { env: ENV });
    assert.deepEqual(spec, parse(EXAMPLE));
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, EXAMPLE.replace('seed: 17', 'seed: x'));
    await assert.rejects(loadSpec(bad, { env: ENV }), (err: unknown) => {
      assert.ok(err instanceof SpecError);
      assert.equal(err.file, bad);
      assert.equal(err.path, 'seed');
      return true;
    });
  });

  it('reports a missing file as a SpecError naming it', async () => {
    const missing = join(dir, 'nope.yaml');
    await assert.rejects(loadSpec(missing, { env: ENV }), (err: unknown) => {
      assert.ok(err instanceof SpecError);
      assert.equal(err.file, missing);
      assert.match(err.message, /cannot read the spec/);
      return true;
    });
  });
});

describe('specHash and canonicalJson', () => {
  it('canonical JSON sorts keys at every level and drops undefined', () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } }),
      '{"a":{"d":[3,{"y":2,"z":1}]},"b":1}',
    );
    assert.equal(canonicalJson('x"y'), '"x\\"y"');
    assert.throws(() => canonicalJson({ a: Number.NaN }), /no JSON form/);
    assert.throws(() => canonicalJson({ a: 1n }), /no JSON form/);
  });

  it('is stable under key order, formatting, comments and explicit defaults', () => {
    const h = specHash(parse(EXAMPLE));
    assert.match(h, /^[0-9a-f]{64}$/);
    const reordered = `# the same mixture, written differently
components:
  - take: { count: 30 }
    transform: triplet
    source: { uris: ["\${DATA}/recap/data/*.parquet"], format: llava-recap }
    name: recap
  - filters: { image_only: true }
    name: cambrian
    source:
      image_root: "\${DATA}/cambrian/images"
      uris: ["\${DATA}/cambrian/*.jsonl"]
      format: cambrian
  - name: docmatix
    take: { fraction: 0.5 }
    filters: { max_images: 1 }
    source: { format: docmatix, uris: ["s3://my-bucket/docmatix/data/*.parquet"] }
images: { jpeg_quality: 95, max_side: 2048 }
output: { compression: zstd, shard_rows: 1000 }
seed: 17
name: demo-it
`;
    assert.equal(specHash(parse(reordered)), h);
    assert.equal(specHash(parse(EXAMPLE.replace('compression: zstd', 'compression: null'))), h);
    const explicit = EXAMPLE.replace(
      'take: { fraction: 0.5 }',
      'take: { fraction: 0.5 }\n    transform: none\n    repeat: 1',
    )
      .replace('    take: { count: 30 }', '    take: { count: 30 }\n    filters: {}')
      .replace(
        'images: { max_side: 2048 }',
        'images: { max_side: 2048, animated: first-frame, reencode_format: jpeg }',
      );
    assert.notEqual(explicit, EXAMPLE);
    assert.equal(specHash(parse(explicit)), h);
  });

  it('changes with anything that changes the build', () => {
    const h = specHash(parse(EXAMPLE));
    assert.notEqual(specHash(parse(EXAMPLE.replace('seed: 17', 'seed: 18'))), h);
    assert.notEqual(specHash(parse(EXAMPLE, { DATA: '/other' })), h);
    assert.notEqual(specHash(parse(EXAMPLE, ENV, ['components.recap.take.count=31'])), h);
    assert.notEqual(specHash(parse(EXAMPLE, ENV, ['images.max_side=1024'])), h);
  });
});

describe('parseSpec: near_dedup and decontaminate', () => {
  const DECONTAM = `decontaminate:
  - name: textvqa-val
    format: llava-json
    uris: ["\${DATA}/eval/textvqa.json"]
    image_root: "\${DATA}/eval/images"
`;

  it('fills the defaults and leaves specs without them, and their hash, unchanged', () => {
    const spec = parse(`${EXAMPLE}near_dedup: {}\n${DECONTAM}`);
    assert.deepEqual(spec.near_dedup, {
      images: { max_distance: 8 },
      text: { threshold: 0.7, ngram: 3, bands: 32, of: 'conversation' },
      scope: 'across',
    });
    assert.deepEqual(spec.decontaminate, [
      {
        name: 'textvqa-val',
        format: 'llava-json',
        uris: ['/data/eval/textvqa.json'],
        image_root: '/data/eval/images',
        ngram: 13,
        max_distance: 8,
      },
    ]);
    const plain = parse(EXAMPLE);
    assert.equal(plain.near_dedup, undefined);
    assert.equal(plain.decontaminate, undefined);
    assert.equal(specHash(plain), specHash(parse(EXAMPLE)));
    assert.notEqual(specHash(spec), specHash(plain));
  });

  it('rejects bands that do not divide the signature, a bad scope and duplicate evaluation set names', () => {
    rejects(
      () => parse(`${EXAMPLE}near_dedup: { text: { bands: 30 }, scope: everywhere }\n`),
      [
        { path: 'near_dedup.text.bands', message: /divisor of 128/ },
        { path: 'near_dedup.scope', message: /within|across/ },
      ],
    );
    rejects(
      () => parse(`${EXAMPLE}${DECONTAM}${DECONTAM.split('\n').slice(1).join('\n')}`),
      [{ path: 'decontaminate[1].name', message: /duplicate evaluation set name 'textvqa-val'/ }],
    );
  });
});
