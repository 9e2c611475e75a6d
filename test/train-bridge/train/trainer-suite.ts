// Setup shared by the training-loop tests: the train-pairs mixture built from the demo data, a GPU engine, and a
// temp folder for metrics and checkpoints, made before the tests of a file and released after them.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { Engine } from '../../../train-bridge/gpu/engine.ts';
import { setUpInBefore } from '../../helpers/hooks.ts';
import { trainPairsMixture } from './fixtures.ts';

export interface TrainerSuite {
  readonly eng: Engine;
  /** The train-pairs mixture's manifest path. */
  readonly manifest: string;
  /** A temp folder, removed after the tests. */
  readonly dir: string;
}

/** Registers before/after hooks (at the top level of a test file or in a describe) and returns what they set up. */
export function useTrainerSuite(): TrainerSuite {
  let eng: Engine | undefined;
  let manifest: string | undefined;
  let dir: string | undefined;
  before(async () => {
    manifest = await trainPairsMixture();
    eng = await Engine.create();
    dir = await mkdtemp(join(tmpdir(), 'mixforge-train-'));
  });
  after(async () => {
    eng?.destroy();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });
  return {
    get eng() {
      return setUpInBefore(eng, 'The engine');
    },
    get manifest() {
      return setUpInBefore(manifest, 'The mixture');
    },
    get dir() {
      return setUpInBefore(dir, 'The temp folder');
    },
  };
}
