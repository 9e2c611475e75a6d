// Worker threads on TypeScript modules without tsx inside the worker: the module and what it imports of ours are
// bundled once per process with esbuild (what tsx itself uses) and the worker starts on plain JavaScript.
import { builtinModules, createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

const BUILTINS = new Set(builtinModules);
const bundles = new Map<string, Promise<URL>>();
const require = createRequire(import.meta.url);

/**
 * A package's entry as a file URL, its CommonJS build where it has one: every worker loads its packages afresh, and
 * sharp + @napi-rs/image through `require` cost a worker 35 ms of CPU against 120 ms through their ES modules
 * (Node 20: ESM resolution and compilation per module). ESM-only packages resolve as imports.
 */
function packageUrl(specifier: string): string {
  try {
    return pathToFileURL(require.resolve(specifier)).href;
  } catch {
    return import.meta.resolve(specifier);
  }
}

/**
 * A `data:` URL holding `entry` bundled with our own modules; packages stay external, imported by absolute file URL
 * (resolved from here: one node_modules for the project), so the bundle needs no folder to live in.
 */
async function bundle(entry: URL): Promise<URL> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [fileURLToPath(entry)],
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    write: false,
    logLevel: 'silent',
    plugins: [
      {
        name: 'packages-by-absolute-url',
        setup(build) {
          build.onResolve({ filter: /^[^./]/ }, (args) =>
            args.path.startsWith('node:') || BUILTINS.has(args.path)
              ? { external: true }
              : { path: packageUrl(args.path), external: true },
          );
        },
      },
    ],
  });
  const code = result.outputFiles[0].text;
  return new URL(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`);
}

/**
 * Start a worker on the module at `entry` (a .ts or .js file URL). From TypeScript sources, registering tsx inside
 * each worker cost 0.56–0.93 s of CPU per worker (its loader thread and transforms; 0.15–0.22 s without tsx,
 * docs/benchmarks.md); the bundle is built once per process (~0.1 s) and shared by every worker on `entry`.
 * `execArgv: []` keeps a parent's `--import tsx` from being loaded again in the worker.
 */
export async function startBundledWorker(entry: URL, workerData?: unknown): Promise<Worker> {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { workerData, execArgv: [] });
  let url = bundles.get(entry.href);
  if (!url) {
    url = bundle(entry);
    bundles.set(entry.href, url);
    // A failed build is not cached: the next pool tries again.
    url.catch(() => bundles.delete(entry.href));
  }
  return new Worker(await url, { workerData, execArgv: [] });
}
