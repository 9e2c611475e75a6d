// Streams the samples of a built mixture in its stored order (shards in manifest order, rows in key order): the
// order exports keep. One row group in memory at a time.
import type { Sample } from '../../core/schema.ts';
import { joinUri } from '../../core/storage/index.ts';
import { type Manifest, manifestRoot, readManifest } from '../../manifests/manifest.ts';
import { readShardSamples } from '../../manifests/shard-format.ts';

export async function* mixtureSamples(out: string, manifest?: Manifest): AsyncGenerator<Sample> {
  const m = manifest ?? (await readManifest(out));
  const root = manifestRoot(out);
  for (const shard of m.shards) yield* readShardSamples(joinUri(root, shard.path));
}

/** File extension of an image format as sharp names it. */
export function imageExtension(format: string): string {
  const f = format.toLowerCase();
  if (f === 'jpeg' || f === 'jpg') return 'jpg';
  if (/^[a-z0-9]{1,8}$/.test(f)) return f;
  throw new Error(`image format "${format}" cannot name a file`);
}
