// Export a built mixture as LLaVA-style training data: one JSON array ({id, image, conversations}) plus an images
// folder, what LLaVA and ml-fastvlm trainers read. Streams: one row group and a few image writes in flight.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { refuseForeignFiles } from '../../core/foreign-files.ts';
import type { Sample } from '../../core/schema.ts';
import { readManifest } from '../../manifests/manifest.ts';
import { imageExtension, mixtureSamples } from './mixture-samples.ts';

export interface LlavaExportOptions {
  dest: string;
  /** Name of the JSON file in dest. */
  jsonName?: string;
  /** Called every 1000 samples and at the end. */
  onProgress?: (samples: number, total: number) => void;
  /** Write into a dest that holds files this export would not write (they are left alone). */
  force?: boolean;
}

export interface LlavaRecord {
  id: string;
  image?: string | string[];
  /**
   * The sample's system turn, as lmms-finetune and LLaVA-style trainers read it: a record field, never a turn
   * (LLaVA's train.py drops a leading non-human turn, so a system turn in `conversations` would be lost).
   */
  system_prompt?: string;
  conversations: { from: string; value: string }[];
}

const SAFE_SEGMENT = /^[A-Za-z0-9_.-]+$/;

/**
 * A relative path base for a sample id: the id itself when every `/`-segment is plain (letters, digits, `_.-`, not
 * `.` or `..`), else the id with other characters replaced by `_` plus 8 hex digits of its sha256, so distinct ids
 * keep distinct paths.
 */
export function imagePathBase(id: string): string {
  const segments = id.split('/');
  if (segments.every((s) => SAFE_SEGMENT.test(s) && s !== '.' && s !== '..')) return id;
  const cleaned = segments
    .map((s) => s.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\.+$/, '_'))
    .filter((s) => s.length > 0)
    .join('/');
  return `${cleaned || '_'}-${createHash('sha256').update(id).digest('hex').slice(0, 8)}`;
}

/** Relative image paths of a sample: `images/<base>.<ext>`, or `images/<base>+<k>.<ext>` for several images. */
export function llavaImagePaths(sample: Pick<Sample, 'id' | 'images'>): string[] {
  const base = imagePathBase(sample.id);
  if (sample.images.length === 1) return [`images/${base}.${imageExtension(sample.images[0].format)}`];
  return sample.images.map((im, k) => `images/${base}+${k}.${imageExtension(im.format)}`);
}

export function llavaRecord(sample: Sample, paths: string[]): LlavaRecord {
  // Validation allows a system turn only first; it moves to `system_prompt`.
  const system = sample.conversations[0]?.from === 'system' ? sample.conversations[0].value : undefined;
  const turns = system === undefined ? sample.conversations : sample.conversations.slice(1);
  // Key order as LLaVA writes it: id, image, conversations (system_prompt before them, as lmms-finetune has it).
  return {
    id: sample.id,
    ...(paths.length === 1 ? { image: paths[0] } : paths.length > 1 ? { image: paths } : {}),
    ...(system !== undefined ? { system_prompt: system } : {}),
    conversations: turns.map((t) => ({ from: t.from, value: t.value })),
  };
}

/** Images written concurrently while the JSON streams on. */
const WRITES_IN_FLIGHT = 16;

export async function exportLlava(
  out: string,
  opts: LlavaExportOptions,
): Promise<{ samples: number; images: number; json: string }> {
  const manifest = await readManifest(out);
  const total = manifest.totals.rows;
  const jsonName = opts.jsonName ?? 'mixture.json';
  const jsonPath = join(opts.dest, jsonName);
  // Only the JSON file (and its temp copy) and images/ are ours: anything else in dest is someone's, not ours to overwrite.
  await refuseForeignFiles(
    '--dest',
    opts.dest,
    (rel) => rel.startsWith('images/') || rel.replace(/\.tmp-\d+$/, '') === jsonName,
    opts.force,
  );
  await mkdir(opts.dest, { recursive: true });
  const tmp = `${jsonPath}.tmp-${process.pid}`;
  const json = createWriteStream(tmp);
  const madeDirs = new Set<string>();
  const writes = new Set<Promise<void>>();
  let samples = 0;
  let images = 0;
  const write = async (text: string) => {
    if (!json.write(text)) await once(json, 'drain');
  };
  try {
    await write('[');
    for await (const sample of mixtureSamples(out, manifest)) {
      const paths = llavaImagePaths(sample);
      for (const [k, rel] of paths.entries()) {
        const file = join(opts.dest, rel);
        const dir = dirname(file);
        const job = (async () => {
          if (!madeDirs.has(dir)) {
            await mkdir(dir, { recursive: true });
            madeDirs.add(dir);
          }
          await writeFile(file, sample.images[k].bytes);
        })();
        writes.add(job);
        job.then(
          () => writes.delete(job),
          () => {},
        );
        if (writes.size >= WRITES_IN_FLIGHT) await Promise.race(writes);
        images++;
      }
      await write(`${samples === 0 ? '\n' : ',\n'}${JSON.stringify(llavaRecord(sample, paths))}`);
      samples++;
      if (samples % 1000 === 0) opts.onProgress?.(samples, total);
    }
    await write(samples === 0 ? ']\n' : '\n]\n');
    await Promise.all(writes);
    json.end();
    await once(json, 'finish');
    await rename(tmp, jsonPath);
  } catch (err) {
    json.destroy();
    await rm(tmp, { force: true });
    throw err;
  }
  opts.onProgress?.(samples, total);
  return { samples, images, json: jsonPath };
}
