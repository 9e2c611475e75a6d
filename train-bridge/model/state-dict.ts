// Model weights ↔ .safetensors with the reference PyTorch state_dict names and layouts, so published FastViTHD
// weights load here and our checkpoints load into PyTorch (`model.load_state_dict(safetensors.torch.load_file(p))`).
import { SourceFileError } from '../../core/errors.ts';
import {
  readSafetensors,
  type SafetensorsFile,
  type TensorToWrite,
  toBigInt64,
  toFloat32,
  writeSafetensors,
} from '../safetensors.ts';
import { FastViTHD, type FastViTHDConfig } from './fastvithd.ts';
import { HostTensor, sameShape, shapeString } from './host-tensor.ts';
import type { Module } from './module.ts';

/** Every parameter and buffer as safetensors entries (F32, BN counters I64), in state_dict order; `prefix` is prepended as is ("model."). */
export function stateDictTensors(root: Module, prefix = ''): Array<[string, TensorToWrite]> {
  const out: Array<[string, TensorToWrite]> = [];
  for (const [name, t] of root.stateEntries()) {
    out.push([prefix + name, { dtype: t.dtype, shape: t.shape, data: t.data }]);
  }
  return out;
}

export interface LoadReport {
  loaded: number;
  /** Model tensors the file lacks (only reported when not strict). */
  missing: string[];
  /** File tensors under the prefix that the model does not have (only reported when not strict). */
  unexpected: string[];
}

/**
 * Copy tensors named `prefix + <state_dict name>` into the model. Floats of any width (F32/F16/BF16/F64) are
 * converted to float32. Strict (default): every model tensor must be present and nothing else under the prefix.
 */
export function loadStateDict(
  root: Module,
  file: SafetensorsFile,
  options: { prefix?: string; strict?: boolean; source?: string } = {},
): LoadReport {
  const prefix = options.prefix ?? '';
  const source = options.source ?? '<safetensors>';
  const expected = new Map([...root.stateEntries()].map(([name, t]) => [prefix + name, t]));
  const missing = [...expected.keys()].filter((k) => !file.tensors.has(k));
  const unexpected = [...file.tensors.keys()].filter((k) => k.startsWith(prefix) && !expected.has(k));
  if ((options.strict ?? true) && (missing.length > 0 || unexpected.length > 0)) {
    const list = (xs: string[]) =>
      `${xs.slice(0, 8).join(', ')}${xs.length > 8 ? `, … (${xs.length} in all)` : ''}`;
    const parts = [];
    if (missing.length) parts.push(`missing ${list(missing)}`);
    if (unexpected.length) parts.push(`unexpected ${list(unexpected)}`);
    throw new SourceFileError(
      source,
      `state_dict does not match the model (prefix "${prefix}"): ${parts.join('; ')}`,
    );
  }
  let loaded = 0;
  for (const [name, target] of expected) {
    const stored = file.tensors.get(name);
    if (!stored) continue;
    if (!sameShape(stored.shape, target.shape)) {
      throw new SourceFileError(
        source,
        `tensor "${name}" has shape ${shapeString(stored.shape)}, the model expects ${shapeString(target.shape)}`,
      );
    }
    try {
      if (target instanceof HostTensor) target.data = toFloat32(stored, name);
      else target.data.set(toBigInt64(stored, name));
    } catch (err) {
      throw new SourceFileError(source, err instanceof Error ? err.message : String(err));
    }
    loaded++;
  }
  return { loaded, missing, unexpected };
}

const STEM_TRAIN = 'patch_embed.0.rbr_conv.0.conv.weight';
const STEM_INFERENCE = 'patch_embed.0.reparam_conv.weight';

/**
 * Where a FastViTHD sits inside a checkpoint and in which form: e.g. prefix
 * "model.vision_tower.vision_tower.model." in a FastVLM checkpoint, "" in one of ours.
 */
export function locateFastViTHD(
  names: Iterable<string>,
): { prefix: string; inferenceMode: boolean } | undefined {
  for (const name of names) {
    for (const [suffix, inferenceMode] of [
      [STEM_TRAIN, false],
      [STEM_INFERENCE, true],
    ] as const) {
      if (
        name.endsWith(suffix) &&
        (name.length === suffix.length || name[name.length - suffix.length - 1] === '.')
      ) {
        return { prefix: name.slice(0, name.length - suffix.length), inferenceMode };
      }
    }
  }
  return undefined;
}

/** Build a FastViTHD in the form the file holds (train or folded) and load its weights. */
export async function loadFastViTHD(uri: string, config: FastViTHDConfig): Promise<FastViTHD> {
  const file = await readSafetensors(uri);
  const where = locateFastViTHD(file.tensors.keys());
  if (!where)
    throw new SourceFileError(
      uri,
      `no FastViTHD found (no tensor named …${STEM_TRAIN} or …${STEM_INFERENCE})`,
    );
  const model = new FastViTHD(config, { inferenceMode: where.inferenceMode });
  loadStateDict(model, file, { prefix: where.prefix, source: uri });
  return model;
}

/** Save a FastViTHD (either form) with reference names; metadata says which config and form. */
export async function saveFastViTHD(
  uri: string,
  model: FastViTHD,
  metadata: Record<string, string> = {},
): Promise<void> {
  const inferenceMode = model.convExp.inferenceMode;
  await writeSafetensors(uri, stateDictTensors(model), {
    // "pt" lets Hugging Face tooling treat the file as PyTorch weights.
    format: 'pt',
    'mixforge.model': model.config.name,
    'mixforge.form': inferenceMode ? 'inference' : 'train',
    ...metadata,
  });
}
