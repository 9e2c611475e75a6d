// The shipped specs in manifests/specs/: each loads pointed at the demo data, at the defaults and at an S3 root;
// they encode the FastVLM recipe; the docs list every variable; the demo layout they expect is what demo/ writes.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expandGlobs } from '../../core/storage/index.ts';
import { generateDemoData } from '../../demo/generate.ts';
import {
  demoOverrides,
  SHIPPED_SPECS,
  type ShippedSpecName,
  SPECS_DIR,
  shippedSpecPath,
} from '../../demo/spec-overrides.ts';
import { loadSpec } from '../../manifests/spec.ts';
import { type ComponentSpec, type MixtureSpec, specHash } from '../../manifests/spec-schema.ts';
import { SOURCE_FORMATS } from '../../sources/types.ts';

const DEMO = '/srv/demo-data';

function inputsOf(spec: MixtureSpec): string[] {
  return spec.components.flatMap((c) => [
    ...c.source.uris,
    ...(c.source.image_root ? [c.source.image_root] : []),
  ]);
}

async function loadShipped(name: ShippedSpecName, env: Record<string, string>): Promise<MixtureSpec> {
  return loadSpec(shippedSpecPath(name), { env });
}

describe('shipped specs', () => {
  it('the list of shipped specs is exactly the files in manifests/specs', async () => {
    const files = (await readdir(SPECS_DIR)).filter((f) => f.endsWith('.yaml')).sort();
    assert.deepEqual(files, SHIPPED_SPECS.map((n) => `${n}.yaml`).sort());
  });

  for (const name of SHIPPED_SPECS) {
    it(`${name}: loads with the demo overrides alone, every input inside the demo data`, async () => {
      const { env, set } = demoOverrides(name, DEMO);
      const spec = await loadSpec(shippedSpecPath(name), { env, set });
      assert.ok(spec.components.length > 0);
      for (const uri of inputsOf(spec))
        assert.ok(uri.startsWith(`${DEMO}/`), `${name}: ${uri} is outside ${DEMO}`);
      assert.match(specHash(spec), /^[0-9a-f]{64}$/);
      // The same name is accepted as a file path too.
      assert.deepEqual(demoOverrides(shippedSpecPath(name), DEMO), { env, set });
    });

    it(`${name}: loads with no variables set (defaults) and with one S3 root`, async () => {
      const defaults = await loadShipped(name, {});
      const root = name === 'demo' ? 'demo-data/' : 'data/';
      for (const uri of inputsOf(defaults)) assert.ok(uri.startsWith(root), `${name}: default ${uri}`);
      const rootVar = name === 'demo' ? 'MIXFORGE_DEMO_DATA' : 'MIXFORGE_DATA';
      const s3 = await loadShipped(name, { [rootVar]: 's3://bucket/datasets' });
      for (const uri of inputsOf(s3)) assert.ok(uri.startsWith('s3://bucket/datasets/'), `${name}: ${uri}`);
      assert.notEqual(specHash(s3), specHash(defaults));
    });
  }

  it('rejects a name that is not a shipped spec', () => {
    assert.throws(() => demoOverrides('it-2m', DEMO), /no shipped spec named 'it-2m'/);
  });
});

describe('the FastVLM recipe', () => {
  const specs = new Map<ShippedSpecName, MixtureSpec>();
  before(async () => {
    for (const name of SHIPPED_SPECS) specs.set(name, await loadShipped(name, {}));
  });
  const get = (name: ShippedSpecName) => specs.get(name) as MixtureSpec;
  const component = (name: ShippedSpecName, c: string) =>
    get(name).components.find((x) => x.name === c) as ComponentSpec;

  it('Stage 1 is LLaVA-Pretrain 558K with its images zip', () => {
    assert.deepEqual(get('stage1-558k').components, [
      {
        name: 'llava_pretrain',
        source: {
          format: 'llava-pretrain',
          uris: ['data/LLaVA-Pretrain/blip_laion_cc_sbu_558k.json'],
          image_root: 'data/LLaVA-Pretrain/images.zip',
        },
        transform: 'none',
        filters: {},
        repeat: 1,
      },
    ]);
  });

  it('Stage 1.5 is ReCap CC3M + CC12M, all of both, as triplets', () => {
    const cs = get('stage1.5-recap-15m').components;
    assert.deepEqual(
      cs.map((c) => [c.name, c.source.format, c.transform, c.take, c.filters]),
      [
        ['recap_cc3m', 'llava-recap', 'triplet', undefined, {}],
        ['recap_cc12m', 'llava-recap', 'triplet', undefined, {}],
      ],
    );
    assert.deepEqual(cs[1].source.uris, ['data/LLaVA-ReCap-CC12M/data/*.parquet']);
  });

  it('the instruction mixes nest: each holds the previous one unchanged, plus one component', () => {
    const chain: [ShippedSpecName, string[]][] = [
      ['it-1.1m', ['llava665k', 'it_splits']],
      ['it-6.5m', ['cambrian']],
      ['it-11.9m', ['llava_onevision']],
      ['it-12.5m', ['docmatix']],
    ];
    let previous: ComponentSpec[] = [];
    for (const [name, added] of chain) {
      const spec = get(name);
      assert.equal(spec.seed, get('it-1.1m').seed, `${name} shares the seed`);
      assert.deepEqual(spec.output, get('it-1.1m').output);
      assert.deepEqual(spec.images, get('it-1.1m').images);
      assert.deepEqual(
        spec.components.slice(0, previous.length),
        previous,
        `${name} starts with the previous mix`,
      );
      assert.deepEqual(
        spec.components.slice(previous.length).map((c) => c.name),
        added,
      );
      previous = spec.components;
    }
    for (const c of get('it-1.1m').components) {
      assert.equal(c.source.format, 'llava-json');
      assert.equal(c.take, undefined);
      assert.deepEqual(c.filters, {}, 'the 665K mix keeps its text-only conversations');
    }
  });

  it('6.5M keeps only image-based Cambrian-7M conversations', () => {
    const c = component('it-6.5m', 'cambrian');
    assert.equal(c.source.format, 'cambrian');
    assert.match(c.source.uris[0], /Cambrian7M_withsystemprompt\.jsonl$/);
    assert.equal(c.filters?.image_only, true);
    assert.equal(c.take, undefined);
  });

  it('11.9M adds every OneVision subset, single-image samples only', () => {
    const c = component('it-11.9m', 'llava_onevision');
    assert.deepEqual(c.source.uris, ['data/LLaVA-OneVision-Data/*/*.parquet']);
    assert.equal(c.filters?.image_only, true);
    assert.equal(c.filters?.max_images, 1);
  });

  it('12.5M adds 600000 single-image DocMatix samples', () => {
    const c = component('it-12.5m', 'docmatix');
    assert.equal(c.source.format, 'docmatix');
    assert.deepEqual(c.take, { count: 600000 });
    assert.equal(c.filters?.max_images, 1);
  });

  it('the demo mixture uses every source format and every way to take samples', () => {
    const demo = get('demo');
    assert.deepEqual(new Set(demo.components.map((c) => c.source.format)), new Set(SOURCE_FORMATS));
    assert.ok(demo.components.some((c) => c.transform === 'triplet' && c.take?.count !== undefined));
    assert.ok(demo.components.some((c) => c.take?.fraction !== undefined));
    assert.ok(demo.components.some((c) => c.filters?.image_only === true));
    assert.ok(demo.components.some((c) => c.repeat > 1));
  });
});

describe('docs/specs.md', () => {
  it('documents every shipped spec and every variable the specs read', async () => {
    const docs = await readFile(join(SPECS_DIR, '..', '..', 'docs', 'specs.md'), 'utf8');
    const variables = new Set<string>();
    for (const name of SHIPPED_SPECS) {
      assert.ok(docs.includes(`${name}.yaml`), `docs/specs.md does not mention ${name}.yaml`);
      const text = await readFile(shippedSpecPath(name), 'utf8');
      for (const m of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) variables.add(m[1]);
    }
    assert.ok(variables.size >= 10);
    for (const v of variables) assert.ok(docs.includes(`\`${v}\``), `docs/specs.md does not document ${v}`);
  });
});

// The layout contract between demo/generate.ts and demoOverrides: a moved demo folder fails here, by name.
describe('shipped specs against generated demo data', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mixforge-demo-'));
    await generateDemoData(dir);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const name of SHIPPED_SPECS) {
    it(`${name}: every input glob matches demo files and every image root exists`, async () => {
      const spec = await loadSpec(shippedSpecPath(name), demoOverrides(name, dir));
      for (const c of spec.components) {
        const files = await expandGlobs(c.source.uris);
        assert.ok(files.length > 0, `${name}/${c.name}: nothing matches ${c.source.uris.join(', ')}`);
        if (c.source.image_root)
          assert.ok(existsSync(c.source.image_root), `${name}/${c.name}: no ${c.source.image_root}`);
      }
    });
  }
});
