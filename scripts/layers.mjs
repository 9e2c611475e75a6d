// Writes .dependency-cruiser.json from DESIGN.md's folder order: a folder imports only folders above it, never
// the demo, benchmarks or tests; no file-level import cycle anywhere. Run after changing the layer list.
import { writeFileSync } from 'node:fs';

/** DESIGN.md's dependency direction, lowest first. */
const LAYERS = ['core', 'sources', 'transforms', 'manifests', 'pipelines', 'workers', 'train-bridge', 'cli'];
/** Folders outside the product: only tests may import tests; the demo may use the product but not the CLI. */
const TOOLING = ['demo', 'dev', 'bench', 'test', 'scripts'];

const forbidden = [
  {
    name: 'no-circular',
    comment: 'Files form no import cycle.',
    severity: 'error',
    from: {},
    to: { circular: true },
  },
  ...LAYERS.map((layer, i) => ({
    name: `${layer}-imports-only-lower-layers`,
    comment: `${layer}/ may import only ${LAYERS.slice(0, i).join(', ') || 'nothing of ours'} (DESIGN.md).`,
    severity: 'error',
    from: { path: `^${layer}/` },
    to: {
      path: `^(${[...LAYERS.slice(i + 1), ...TOOLING.filter((t) => !(layer === 'cli' && t === 'demo'))].join('|')})/`,
    },
  })),
  {
    name: 'gpu-engine-stands-alone',
    comment:
      'The WebGPU engine knows nothing of mixforge: only itself, core/errors.ts, node and npm packages.',
    severity: 'error',
    from: { path: '^train-bridge/gpu/' },
    to: { dependencyTypesNot: ['core', 'npm', 'npm-dev'], pathNot: '^(train-bridge/gpu/|core/errors\\.ts$)' },
  },
  {
    name: 'demo-does-not-import-cli',
    comment: 'The CLI calls the demo, passing in what it needs (progress sink).',
    severity: 'error',
    from: { path: '^demo/' },
    to: { path: '^(cli|bench|test)/' },
  },
  {
    name: 'bench-does-not-import-tests',
    comment: 'Helpers both use live in dev/ (or the product).',
    severity: 'error',
    from: { path: '^bench/' },
    to: { path: '^test/' },
  },
  {
    name: 'dev-helpers-import-only-the-product',
    comment:
      'dev/ serves tests and benchmarks; it never imports them (the product and the demo data generator it may use).',
    severity: 'error',
    from: { path: '^dev/' },
    to: { path: '^(test|bench|cli)/' },
  },
];

const config = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^node_modules|^\\.cache|^demo-data|^demo-out)' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.json'] },
  },
};
writeFileSync('.dependency-cruiser.json', `${JSON.stringify(config, null, 2)}\n`);
