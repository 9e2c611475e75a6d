// Training checkpoints: a folder per saved step with the model (LM objective: model/ in the published FastVLM layout;
// contrastive: the encoder with reference names and the heads), AdamW moments, and trainer.json (config, step, loader).
// Written to a temporary folder and renamed, then `latest.json` is replaced, so a crash never leaves a torn checkpoint.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { SourceFileError } from '../../core/errors.ts';
import type { AdamW, AdamWState } from '../gpu/optim/adamw.ts';
import { type PackedState, PackedStateSchema } from '../loader/packed-dataset.ts';
import { type LoaderState, LoaderStateSchema } from '../loader/state.ts';
import type { FastViTHD } from '../model/fastvithd.ts';
import { loadStateDict, stateDictTensors } from '../model/state-dict.ts';
import { readSafetensors, type TensorToWrite, toFloat32, writeSafetensors } from '../safetensors.ts';
import type { AlignmentHeads } from './objective.ts';
import { type RunConfig, RunConfigSchema } from './presets.ts';

export const TRAINER_STATE_KIND = 'mixforge.trainer-state';

/** Where the data resumes: the loader's state, or the packed loader's (samples in consumed packs are done). */
export type TrainLoaderState = LoaderState | PackedState;

/** The unpacked loader's state of a checkpoint; a packed one is refused (its run trains with --pack). */
export function unpackedLoaderState(
  s: TrainLoaderState | undefined,
  folder: string,
): LoaderState | undefined {
  if (s?.kind === 'mixforge.packed-state')
    throw new SourceFileError(
      join(folder, 'trainer.json'),
      `the run packs its samples (capacity ${s.capacity}); resume it with packing`,
    );
  return s;
}

/** The epoch a loader state is in. */
export function loaderStateEpoch(s: TrainLoaderState): number {
  return s.kind === 'mixforge.packed-state' ? s.mix.epoch : s.epoch;
}

const TrainerStateSchema = z.strictObject({
  kind: z.literal(TRAINER_STATE_KIND),
  version: z.literal(1),
  /** Optimiser updates done. */
  step: z.number().int().min(0),
  config: RunConfigSchema,
  loader: z.union([LoaderStateSchema, PackedStateSchema]),
  /** Samples skipped so far (no image or no caption). */
  skipped: z.number().int().min(0),
});

export type TrainerState = z.infer<typeof TrainerStateSchema>;

const LatestSchema = z.strictObject({ step: z.number().int().min(0), path: z.string() });

export const stepFolder = (step: number) => `step-${String(step).padStart(8, '0')}`;

export interface CheckpointContents {
  step: number;
  config: RunConfig;
  loader: TrainLoaderState;
  skipped: number;
  /** Writes the model's files into the checkpoint folder (being assembled at `folder`). */
  writeModel: (folder: string, metadata: Record<string, string>) => Promise<void>;
  optimizer: AdamWState;
  /** Names of the optimiser's parameters, in its order (moments are stored under these names). */
  paramNames: string[];
}

/** Write a checkpoint for `step` under `dir` and point latest.json at it; returns its folder. */
export async function saveCheckpoint(dir: string, c: CheckpointContents): Promise<string> {
  const name = stepFolder(c.step);
  const final = join(dir, name);
  const tmp = join(dir, `${name}.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const meta = { 'mixforge.step': String(c.step), 'mixforge.model': c.config.model };
  await c.writeModel(tmp, meta);
  const { m, v, ...scalars } = c.optimizer;
  const moments: Array<[string, TensorToWrite]> = [];
  c.paramNames.forEach((p, i) => {
    moments.push([`exp_avg.${p}`, { dtype: 'F32', shape: [m[i].length], data: m[i] }]);
    moments.push([`exp_avg_sq.${p}`, { dtype: 'F32', shape: [v[i].length], data: v[i] }]);
  });
  // Scalars as JSON text: lr and betas are doubles, which the f32 tensors could not hold exactly.
  await writeSafetensors(join(tmp, 'optimizer.safetensors'), moments, {
    ...meta,
    'mixforge.adamw': JSON.stringify(scalars),
    'mixforge.params': JSON.stringify(c.paramNames),
  });
  const state: TrainerState = {
    kind: TRAINER_STATE_KIND,
    version: 1,
    step: c.step,
    config: c.config,
    loader: c.loader,
    skipped: c.skipped,
  };
  await writeFile(join(tmp, 'trainer.json'), `${JSON.stringify(state, null, 2)}\n`);
  await rm(final, { recursive: true, force: true });
  await rename(tmp, final);
  const latestTmp = join(dir, `latest.json.tmp-${process.pid}`);
  await writeFile(latestTmp, `${JSON.stringify({ step: c.step, path: name })}\n`);
  await rename(latestTmp, join(dir, 'latest.json'));
  return final;
}

/** The folder latest.json points at, or undefined when `dir` holds no checkpoint. */
export async function latestCheckpoint(dir: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, 'latest.json'), 'utf8');
  } catch {
    return undefined;
  }
  const parsed = LatestSchema.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new SourceFileError(
      join(dir, 'latest.json'),
      `not a checkpoint pointer: ${parsed.error.issues[0].message}`,
    );
  return join(dir, parsed.data.path);
}

export async function readTrainerState(folder: string): Promise<TrainerState> {
  const file = join(folder, 'trainer.json');
  const r = TrainerStateSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new SourceFileError(file, `at ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return r.data;
}

/** The contrastive objective's model files: the encoder (reference names) and the heads. */
export function contrastiveModelWriter(encoder: FastViTHD, heads: AlignmentHeads) {
  return async (folder: string, meta: Record<string, string>): Promise<void> => {
    await writeSafetensors(join(folder, 'encoder.safetensors'), stateDictTensors(encoder), {
      format: 'pt',
      ...meta,
      'mixforge.form': encoder.convExp.inferenceMode ? 'inference' : 'train',
    });
    await writeSafetensors(join(folder, 'heads.safetensors'), stateDictTensors(heads), {
      format: 'pt',
      ...meta,
    });
  };
}

/** Load model tensors into host trees built from the checkpoint's config (strict names and shapes). */
export async function loadCheckpointWeights(
  folder: string,
  encoder: FastViTHD,
  heads: AlignmentHeads,
): Promise<void> {
  const enc = join(folder, 'encoder.safetensors');
  loadStateDict(encoder, await readSafetensors(enc), { source: enc });
  const hd = join(folder, 'heads.safetensors');
  loadStateDict(heads, await readSafetensors(hd), { source: hd });
}

/** The optimiser state, checked against the parameter names of the optimiser it will be loaded into. */
export async function loadOptimizerState(
  folder: string,
  optimizer: AdamW,
  paramNames: string[],
): Promise<void> {
  const uri = join(folder, 'optimizer.safetensors');
  const file = await readSafetensors(uri);
  const saved = JSON.parse(file.metadata['mixforge.params'] ?? '[]') as string[];
  if (saved.length !== paramNames.length || saved.some((n, i) => n !== paramNames[i])) {
    throw new SourceFileError(
      uri,
      `moments are for ${saved.length} parameters that differ from the run's ${paramNames.length}`,
    );
  }
  const scalars = JSON.parse(file.metadata['mixforge.adamw'] ?? '{}') as Omit<AdamWState, 'm' | 'v'>;
  const moment = (key: string) => {
    const t = file.tensors.get(key);
    if (!t) throw new SourceFileError(uri, `missing tensor ${key}`);
    return toFloat32(t, key);
  };
  optimizer.loadStateDict({
    ...scalars,
    m: paramNames.map((p) => moment(`exp_avg.${p}`)),
    v: paramNames.map((p) => moment(`exp_avg_sq.${p}`)),
  });
}
