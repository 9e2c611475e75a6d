// A small (image, caption) mixture built from the demo data by the real build pipeline: the demo's Cambrian
// records (image-only, one distinct caption "Answer <i>." each), so retrieval on the training pairs is well-posed.
import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseSpec } from '../../../manifests/spec.ts';
import { makeBuildContext } from '../../../pipelines/context.ts';
import { runBuildInProcess } from '../../../pipelines/executor-inprocess.ts';
import { demoDataDir } from '../../helpers/demo-data.ts';

const SPEC = `
name: train-pairs
description: demo Cambrian image conversations, for training-loop tests
seed: 5
output:
  shard_rows: 8
components:
  - name: cambrian
    source:
      format: cambrian
      uris: ["\${MIXFORGE_DEMO_DATA}/cambrian/*.jsonl"]
      image_root: "\${MIXFORGE_DEMO_DATA}/cambrian"
    filters:
      image_only: true
`;

/** Build (once per demo-data version; concurrent test files race to a rename) and return the manifest path. */
export async function trainPairsMixture(): Promise<string> {
  const data = await demoDataDir();
  const out = resolve('.cache', `train-pairs-${data.split('-').at(-1)}`);
  const manifest = join(out, 'manifest.json');
  if (existsSync(manifest)) return manifest;
  const tmp = `${out}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const spec = parseSpec(SPEC, { file: 'train-pairs.yaml', env: { MIXFORGE_DEMO_DATA: data } });
  await runBuildInProcess(makeBuildContext(spec, tmp));
  try {
    await rename(tmp, out);
  } catch {
    // Another test process finished first: use its copy (same spec, same bytes).
    await rm(tmp, { recursive: true, force: true });
  }
  return manifest;
}

const TRIPLETS_SPEC = `
name: demo-triplets-16
description: 16 Stage-1.5 triplets (question, image, caption) from the demo's single-answer Cambrian images, for the overfit test
seed: 3
output:
  shard_rows: 16
components:
  - name: cambrian
    source:
      format: cambrian
      uris: ["\${MIXFORGE_DEMO_DATA}/cambrian/*.jsonl"]
      image_root: "\${MIXFORGE_DEMO_DATA}/cambrian"
    filters:
      image_only: true
    transform: triplet
    take:
      count: 16
`;

/**
 * 16 triplets built by the real pipeline from the demo's Cambrian images (short captions "Answer <i>.": the
 * overfit test's vocabulary-wide cross-entropy stays affordable on lavapipe), built once per demo-data version.
 */
export async function demoTripletsMixture(): Promise<string> {
  const data = await demoDataDir();
  const out = resolve('.cache', `demo-triplets-16-${data.split('-').at(-1)}`);
  const manifest = join(out, 'manifest.json');
  if (existsSync(manifest)) return manifest;
  const tmp = `${out}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const spec = parseSpec(TRIPLETS_SPEC, {
    file: 'demo-triplets-16.yaml',
    env: { MIXFORGE_DEMO_DATA: data },
  });
  await runBuildInProcess(makeBuildContext(spec, tmp));
  try {
    await rename(tmp, out);
  } catch {
    await rm(tmp, { recursive: true, force: true });
  }
  return manifest;
}
