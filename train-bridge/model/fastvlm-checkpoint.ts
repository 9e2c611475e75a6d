// FastVLM checkpoints in the published (LLaVA-Qwen2) layout: a folder with config.json, tokenizer.json and the
// state_dict as model.safetensors or shards model-0000k-of-0000n.safetensors + model.safetensors.index.json.
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { SourceFileError } from '../../core/errors.ts';
import {
  readSafetensors,
  readSafetensorsHeader,
  type SafetensorsFile,
  writeSafetensors,
} from '../safetensors.ts';
import { FastViTHD, MODEL_CONFIGS } from './fastvithd.ts';
import { FastVLM, type FastVLMConfig } from './fastvlm.ts';
import { parseQwen2Config } from './qwen2.ts';
import { loadStateDict, locateFastViTHD, stateDictTensors } from './state-dict.ts';

export const CONFIG_FILE = 'config.json';
export const TOKENIZER_FILE = 'tokenizer.json';
export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** Hugging Face's default shard size for save_pretrained. */
const DEFAULT_SHARD_BYTES = 5 * 1024 ** 3;

const IndexSchema = z.looseObject({
  metadata: z.looseObject({ total_size: z.number().optional() }).optional(),
  weight_map: z.record(z.string(), z.string()),
});

/** The LLaVA fields of FastVLM's config.json next to the Qwen2 ones. */
const LlavaFieldsSchema = z.looseObject({
  mm_vision_tower: z.string().optional(),
  mm_hidden_size: z.number().int().positive().optional(),
  /** Ours: which FastViTHD config the tower is (FastVLM's own releases say mobileclip_l_<resolution>). */
  mixforge_vision_config: z.string().optional(),
  mixforge_resolution: z.number().int().positive().optional(),
});

/** config.json of a FastVLM: the Qwen2 fields, LLaVA's multimodal fields, and which vision config is ours. */
export function fastVLMConfigJson(c: FastVLMConfig): Record<string, unknown> {
  const visionDim = new FastViTHD(c.vision).outChannels;
  return {
    architectures: ['LlavaQwen2ForCausalLM'],
    model_type: 'llava_qwen2',
    ...c.lm,
    mm_vision_tower: `mobileclip_l_${c.resolution}`,
    mm_hidden_size: visionDim,
    mm_projector_type: 'mlp2x_gelu',
    mm_vision_select_layer: -2,
    mm_use_im_start_end: false,
    mm_use_im_patch_token: false,
    image_aspect_ratio: 'pad',
    tokenizer_padding_side: 'right',
    mixforge_model: c.name,
    mixforge_vision_config: c.vision.name,
    mixforge_resolution: c.resolution,
  };
}

/** The FastVLMConfig a config.json describes (a published FastVLM's, or one of ours). */
export function parseFastVLMConfigJson(json: unknown, source: string): FastVLMConfig {
  const lm = parseQwen2Config(json, source);
  const llava = LlavaFieldsSchema.parse(json);
  const tower = llava.mm_vision_tower ?? '';
  const visionName =
    llava.mixforge_vision_config ?? (tower.startsWith('mobileclip_l') ? 'fastvithd' : undefined);
  if (!visionName || !Object.hasOwn(MODEL_CONFIGS, visionName)) {
    throw new SourceFileError(source, `vision tower "${tower}" is not a FastViTHD this build knows`);
  }
  const resolution = llava.mixforge_resolution ?? (Number(tower.split('_').at(-1)) || 1024);
  const name =
    typeof (json as { mixforge_model?: unknown }).mixforge_model === 'string'
      ? (json as { mixforge_model: string }).mixforge_model
      : 'fastvlm';
  return { name, vision: MODEL_CONFIGS[visionName]!, lm, resolution };
}

export async function readFastVLMConfig(dir: string): Promise<FastVLMConfig> {
  const path = join(dir, CONFIG_FILE);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new SourceFileError(path, `cannot read the model config: ${(err as Error).message}`);
  }
  return parseFastVLMConfigJson(json, path);
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

/** The shard files of a checkpoint folder and which tensors each holds (one entry for a single file). */
export async function checkpointFiles(dir: string): Promise<Map<string, string[]>> {
  const index = join(dir, INDEX_FILE);
  if (await exists(index)) {
    const r = IndexSchema.safeParse(JSON.parse(await readFile(index, 'utf8')));
    if (!r.success)
      throw new SourceFileError(index, `not a safetensors index: ${r.error.issues[0]!.message}`);
    const files = new Map<string, string[]>();
    for (const [tensor, file] of Object.entries(r.data.weight_map)) {
      if (file.includes('/') || file.includes('\\'))
        throw new SourceFileError(index, `shard "${file}" is not a file name`);
      const list = files.get(file) ?? [];
      list.push(tensor);
      files.set(file, list);
    }
    return files;
  }
  const single = join(dir, SINGLE_FILE);
  if (!(await exists(single))) throw new SourceFileError(dir, `no ${SINGLE_FILE} and no ${INDEX_FILE}`);
  return new Map([[SINGLE_FILE, [...(await readSafetensorsHeader(single)).tensors.keys()]]]);
}

/** Every tensor of a checkpoint folder (single file or shards) as one SafetensorsFile. */
export async function readCheckpointTensors(dir: string): Promise<SafetensorsFile> {
  const merged: SafetensorsFile = { tensors: new Map(), metadata: {} };
  for (const [file, names] of await checkpointFiles(dir)) {
    const f = await readSafetensors(join(dir, file));
    for (const name of names) {
      const t = f.tensors.get(name);
      if (!t) throw new SourceFileError(join(dir, file), `the index lists ${name}, the shard lacks it`);
      merged.tensors.set(name, t);
    }
    Object.assign(merged.metadata, f.metadata);
  }
  return merged;
}

export interface LoadedFastVLM {
  model: FastVLM;
  /** Model tensors the checkpoint did not have (left at their init): e.g. the tower and projector of a Qwen2 checkpoint. */
  missing: string[];
}

/**
 * Load a FastVLM folder. Strict by default; `partial` accepts a checkpoint with parts missing (a published Qwen2,
 * or a FastVLM without our vision config) and reports them. A tied model's `lm_head.weight` (published FastVLM
 * files carry a copy of the embedding) is ignored.
 */
export async function loadFastVLM(
  dir: string,
  opts: { config?: FastVLMConfig; partial?: boolean; init?: (m: FastVLM) => void } = {},
): Promise<LoadedFastVLM> {
  const config = opts.config ?? (await readFastVLMConfig(dir));
  const file = await readCheckpointTensors(dir);
  if (config.lm.tie_word_embeddings) file.tensors.delete('lm_head.weight');
  const where = locateFastViTHD(file.tensors.keys());
  const model = new FastVLM(config, { inferenceMode: where?.inferenceMode });
  opts.init?.(model);
  const report = loadStateDict(model, file, { source: dir, strict: !opts.partial });
  return { model, missing: report.missing };
}

/**
 * Save in the published layout: config.json, tokenizer.json (copied from `tokenizer` when given), the weights in
 * one file or in shards of at most `shardBytes` with an index. Written to a temporary folder and renamed.
 * A tied model also stores `lm_head.weight` (a copy of the embedding), as the published FastVLM files do.
 */
export async function saveFastVLM(
  dir: string,
  model: FastVLM,
  opts: { tokenizer?: string; shardBytes?: number; metadata?: Record<string, string> } = {},
): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const tensors = stateDictTensors(model);
  if (!model.lmHead) {
    const embed = model.model.embedTokens.weight;
    tensors.push(['lm_head.weight', { dtype: 'F32', shape: embed.shape, data: embed.data }]);
  }
  const limit = opts.shardBytes ?? DEFAULT_SHARD_BYTES;
  const shards: Array<typeof tensors> = [[]];
  let size = 0;
  let total = 0;
  for (const entry of tensors) {
    const bytes = entry[1].data.byteLength;
    if (size > 0 && size + bytes > limit) {
      shards.push([]);
      size = 0;
    }
    shards.at(-1)!.push(entry);
    size += bytes;
    total += bytes;
  }
  const metadata = { format: 'pt', ...opts.metadata };
  if (shards.length === 1) await writeSafetensors(join(tmp, SINGLE_FILE), shards[0]!, metadata);
  else {
    const weightMap: Record<string, string> = Object.create(null);
    const n = shards.length;
    const pad = (k: number) => String(k).padStart(5, '0');
    for (const [k, shard] of shards.entries()) {
      const name = `model-${pad(k + 1)}-of-${pad(n)}.safetensors`;
      await writeSafetensors(join(tmp, name), shard, metadata);
      for (const [tensor] of shard) weightMap[tensor] = name;
    }
    await writeFile(
      join(tmp, INDEX_FILE),
      `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`,
    );
  }
  await writeFile(join(tmp, CONFIG_FILE), `${JSON.stringify(fastVLMConfigJson(model.config), null, 2)}\n`);
  if (opts.tokenizer) await copyFile(opts.tokenizer, join(tmp, TOKENIZER_FILE));
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
}
