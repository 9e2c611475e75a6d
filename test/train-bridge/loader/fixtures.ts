// Writes small built mixtures for loader and export tests: shards in mixforge.sample/v1 (the real shard writer)
// plus a manifest.json, without running the build pipeline.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { keyedHash64 } from '../../../core/keyed-hash.ts';
import type { Sample, SampleImage } from '../../../core/schema.ts';
import { type DemoImageFormat, drawDemoImage } from '../../../demo/images.ts';
import type { Manifest } from '../../../manifests/manifest.ts';
import { writeSampleShard } from '../../../manifests/shard-format.ts';
import { shardHashes } from '../../../manifests/shard-integrity.ts';
import type { MixtureSpec } from '../../../manifests/spec-schema.ts';
import { emptyShardStats } from '../../../manifests/stats.ts';

export interface FixtureOptions {
  /** Rows per shard. */
  shards: number[];
  seed?: number;
  /** Give every sample one real image (JPEG/PNG/WebP in turn); else text-only samples. */
  images?: boolean;
  /** Images of sample i of shard s (overrides `images`); the human turn gets as many `<image>` tokens. */
  imageCount?: (shard: number, i: number) => number;
  /** The `source` of sample i of shard s (default `fixture/demo`). */
  source?: (shard: number, i: number) => string;
  /** Draw images at this size instead of the demo's varied sizes. */
  imageSize?: { width: number; height: number };
  /** Write the manifest as builds did before per-row-group hashes (whole-file sha256 only). */
  wholeFileHashOnly?: boolean;
}

export const fixtureId = (shard: number, i: number) => `fixture/s${shard}-${i}`;

const FORMATS: DemoImageFormat[] = ['jpeg', 'png', 'webp'];

/** Write a mixture under `dir`; returns the manifest. Samples of shard s are `fixture/s<s>-<i>`, sorted by key. */
export async function writeFixtureMixture(dir: string, opts: FixtureOptions): Promise<Manifest> {
  const seed = opts.seed ?? 7;
  await mkdir(join(dir, 'shards'), { recursive: true });
  const shards: Manifest['shards'] = [];
  let n = 0;
  for (const [s, rows] of opts.shards.entries()) {
    const samples: Sample[] = [];
    for (let i = 0; i < rows; i++) {
      const id = fixtureId(s, i);
      const images: SampleImage[] = [];
      const count = opts.imageCount?.(s, i) ?? (opts.images ? 1 : 0);
      for (let k = 0; k < count; k++) {
        const format = FORMATS[(n + k) % FORMATS.length];
        const bytes = await drawDemoImage(`${id}/${k}`, format, opts.imageSize);
        const meta = await sharp(bytes).metadata();
        images.push({ bytes, width: meta.width ?? 0, height: meta.height ?? 0, format });
      }
      samples.push({
        id,
        source: opts.source?.(s, i) ?? 'fixture/demo',
        images,
        conversations: [
          { from: 'human', value: `${'<image>\n'.repeat(count)}What is in ${id}?` },
          { from: 'gpt', value: `Caption of ${id}.` },
        ],
        origin: `fixture://s${s}#row=${i}`,
        key: keyedHash64(seed, 'key', id),
      });
      n++;
    }
    samples.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const bytes = await writeSampleShard(samples, { compression: 'zstd', mixture: 'fixture' });
    const path = `shards/shard-${String(s).padStart(5, '0')}.parquet`;
    await writeFile(join(dir, path), bytes);
    shards.push({
      path,
      rows,
      bytes: bytes.byteLength,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      ...(opts.wholeFileHashOnly ? {} : shardHashes(bytes)),
    });
  }
  const total = shards.reduce((a, s) => a + s.rows, 0);
  const manifest: Manifest = {
    schema: 'mixforge.manifest/v1',
    sampleSchema: 'mixforge.sample/v1',
    name: 'fixture',
    seed,
    specHash: 'fixture',
    // The loader never reads the spec; a fixture has none.
    spec: {} as MixtureSpec,
    inputs: [],
    components: [],
    totals: {
      rows: total,
      shards: shards.length,
      bytes: shards.reduce((a, s) => a + s.bytes, 0),
      quarantined: 0,
    },
    shards,
    quarantine: { path: 'quarantine.parquet', rows: 0, bytes: 0, sha256: '' },
    stats: emptyShardStats(),
  };
  await writeFile(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** Collect an async iterable. */
export async function collect<T>(it: AsyncIterable<T>, limit = Number.POSITIVE_INFINITY): Promise<T[]> {
  const out: T[] = [];
  if (limit <= 0) return out;
  for await (const x of it) {
    out.push(x);
    if (out.length >= limit) break;
  }
  return out;
}
