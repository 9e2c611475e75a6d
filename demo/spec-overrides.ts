// Points each shipped spec at the bundled demo data (demo/generate.ts layout), so tests and `plan`/`build` can run
// every shipped mixture end to end without the real datasets. Only environment variables are needed.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MixforgeError } from '../core/errors.ts';
import { joinUri } from '../core/storage/index.ts';

/** The folder of the ready specs. */
export const SPECS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'manifests', 'specs');

/** The ready specs, by name (file `manifests/specs/<name>.yaml`). */
export const SHIPPED_SPECS = [
  'demo',
  'stage1-558k',
  'stage1.5-recap-15m',
  'it-1.1m',
  'it-6.5m',
  'it-11.9m',
  'it-12.5m',
] as const;

export type ShippedSpecName = (typeof SHIPPED_SPECS)[number];

export function shippedSpecPath(name: ShippedSpecName): string {
  return join(SPECS_DIR, `${name}.yaml`);
}

export interface SpecInputs {
  /** Variables for `${VAR}` expansion (merge over process.env or use alone). */
  env: Record<string, string>;
  /** `--set path=value` overrides. */
  set: string[];
}

/**
 * The env/--set that point a shipped spec at the demo data in `dataDir` (a folder or s3:// prefix). Datasets the
 * demo data has no copy of reuse the closest demo source of the same format: CC12M reads the CC3M demo shards,
 * and the extra instruction splits read the demo 665K file (the build then resolves the repeats as duplicates).
 */
export function demoOverrides(specName: string, dataDir: string): SpecInputs {
  const name = specName.replace(/^.*\//, '').replace(/\.ya?ml$/, '');
  const d = (...parts: string[]) => joinUri(dataDir, ...parts);
  const llava665k = {
    LLAVA665K_JSON: d('llava665k', 'llava_v1_5_mix665k.json'),
    LLAVA665K_IMAGES: d('llava665k'),
    IT_SPLITS_JSON: d('llava665k', 'llava_v1_5_mix665k.json'),
    IT_SPLITS_IMAGES: d('llava665k'),
  };
  const cambrian = { CAMBRIAN_JSONL: d('cambrian', '*.jsonl'), CAMBRIAN_IMAGES: d('cambrian') };
  const onevision = { LLAVA_ONEVISION: d('onevision') };
  const docmatix = { DOCMATIX: d('docmatix') };
  const envs: Record<ShippedSpecName, Record<string, string>> = {
    demo: { MIXFORGE_DEMO_DATA: dataDir },
    'stage1-558k': { LLAVA_PRETRAIN: d('pretrain') },
    'stage1.5-recap-15m': { RECAP_CC3M: d('recap-cc3m'), RECAP_CC12M: d('recap-cc3m') },
    'it-1.1m': llava665k,
    'it-6.5m': { ...llava665k, ...cambrian },
    'it-11.9m': { ...llava665k, ...cambrian, ...onevision },
    'it-12.5m': { ...llava665k, ...cambrian, ...onevision, ...docmatix },
  };
  if (!(SHIPPED_SPECS as readonly string[]).includes(name)) {
    throw new MixforgeError(
      `no shipped spec named '${specName}' (expected one of ${SHIPPED_SPECS.join(', ')})`,
    );
  }
  return { env: envs[name as ShippedSpecName], set: [] };
}
