// Streams the samples of a built mixture in its stored order (shards in manifest order, rows in key order): the
// order exports keep. One row group in memory at a time, each checked against the manifest's hashes before use.

import type { Sample } from '../../core/schema.ts';
import { type Manifest, manifestRoot, readManifest } from '../../manifests/manifest.ts';
import { verifiedShardSamples } from '../../manifests/verified-shard.ts';

export async function* mixtureSamples(out: string, manifest?: Manifest): AsyncGenerator<Sample> {
  const m = manifest ?? (await readManifest(out));
  const root = manifestRoot(out);
  for (const entry of m.shards) yield* verifiedShardSamples(root, entry);
}

/** File extension of an image format as sharp names it. */
export function imageExtension(format: string): string {
  const f = format.toLowerCase();
  if (f === 'jpeg' || f === 'jpg') return 'jpg';
  if (/^[a-z0-9]{1,8}$/.test(f)) return f;
  throw new Error(`image format "${format}" cannot name a file`);
}
