// Export a built mixture as WebDataset tar shards: per sample `<key>.<ext>` image(s) and `<key>.json` (id, source,
// conversations, image sizes), keys in the mixture's stored order. Streams through tar-stream with backpressure.
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { refuseForeignFiles } from '../../core/foreign-files.ts';
import type { Sample } from '../../core/schema.ts';
import { readManifest } from '../../manifests/manifest.ts';
import { imageExtension, mixtureSamples } from './mixture-samples.ts';

export interface WebDatasetExportOptions {
  dest: string;
  /** Samples per tar shard. */
  samplesPerShard?: number;
  /** Start a new shard once a shard holds this many bytes. */
  maxShardBytes?: number;
  onProgress?: (samples: number, total: number) => void;
  /** Write into a dest that holds files this export would not write (they are left alone). */
  force?: boolean;
}

export interface WebDatasetJson {
  id: string;
  source: string;
  conversations: { from: string; value: string }[];
  /** Member names (relative to the key's folder) and sizes of the images, in `<image>` order. */
  images: { file: string; width: number; height: number; format: string }[];
  origin: string;
}

/** The WebDataset key of the n-th sample: zero-padded, no dots (WebDataset splits the key at the first dot). */
export const webdatasetKey = (n: number) => String(n).padStart(9, '0');

/** Member names of a sample's images: `<key>.<ext>` for one image, `<key>.<k>.<ext>` for several. */
export function webdatasetImageNames(key: string, sample: Pick<Sample, 'images'>): string[] {
  if (sample.images.length === 1) return [`${key}.${imageExtension(sample.images[0].format)}`];
  return sample.images.map((im, k) => `${key}.${k}.${imageExtension(im.format)}`);
}

export const webdatasetShardName = (i: number) => `shard-${String(i).padStart(6, '0')}.tar`;

class ShardWriter {
  private readonly pack = tar.pack();
  private readonly done: Promise<void>;
  bytes = 0;
  samples = 0;
  constructor(
    readonly path: string,
    private readonly tmp: string,
  ) {
    this.done = pipeline(this.pack, createWriteStream(tmp));
    this.done.catch(() => {});
  }
  /** Resolves once the entry is in the tar stream's buffer below its high-water mark (backpressure). */
  add(name: string, body: Uint8Array): Promise<void> {
    this.bytes += 512 + Math.ceil(body.byteLength / 512) * 512;
    return new Promise((resolve, reject) => {
      this.pack.entry(
        { name, size: body.byteLength, mode: 0o644, mtime: new Date(0) },
        Buffer.from(body),
        (err) => (err ? reject(err) : resolve()),
      );
    });
  }
  async finish(): Promise<void> {
    this.pack.finalize();
    await this.done;
    await rename(this.tmp, this.path);
  }
  async abort(): Promise<void> {
    this.pack.destroy();
    await this.done.catch(() => {});
    await rm(this.tmp, { force: true });
  }
}

export async function exportWebDataset(
  out: string,
  opts: WebDatasetExportOptions,
): Promise<{ samples: number; shards: string[] }> {
  const manifest = await readManifest(out);
  const perShard = opts.samplesPerShard ?? 1000;
  const maxBytes = opts.maxShardBytes ?? 1024 ** 3;
  if (!Number.isInteger(perShard) || perShard < 1)
    throw new RangeError(`samplesPerShard must be ≥ 1, got ${perShard}`);
  // Only tar shards named like ours (and their temp copies) may be overwritten; anything else in dest is someone's.
  await refuseForeignFiles(
    '--dest',
    opts.dest,
    (rel) => /^shard-\d{6,}\.tar(\.tmp-\d+)?$/.test(rel),
    opts.force,
  );
  await mkdir(opts.dest, { recursive: true });
  const shards: string[] = [];
  let writer: ShardWriter | undefined;
  let n = 0;
  try {
    for await (const sample of mixtureSamples(out, manifest)) {
      if (!writer || writer.samples >= perShard || writer.bytes >= maxBytes) {
        await writer?.finish();
        const path = join(opts.dest, webdatasetShardName(shards.length));
        shards.push(path);
        writer = new ShardWriter(path, `${path}.tmp-${process.pid}`);
      }
      const key = webdatasetKey(n);
      const names = webdatasetImageNames(key, sample);
      for (const [k, name] of names.entries()) await writer.add(name, sample.images[k].bytes);
      const meta: WebDatasetJson = {
        id: sample.id,
        source: sample.source,
        conversations: sample.conversations.map((t) => ({ from: t.from, value: t.value })),
        images: sample.images.map((im, k) => ({
          file: names[k],
          width: im.width,
          height: im.height,
          format: im.format,
        })),
        origin: sample.origin,
      };
      await writer.add(`${key}.json`, Buffer.from(JSON.stringify(meta)));
      writer.samples++;
      n++;
      if (n % 1000 === 0) opts.onProgress?.(n, manifest.totals.rows);
    }
    await writer?.finish();
  } catch (err) {
    await writer?.abort();
    throw err;
  }
  opts.onProgress?.(n, manifest.totals.rows);
  return { samples: n, shards };
}
