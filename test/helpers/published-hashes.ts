// sha256 of every file a build publishes (manifest, shards, quarantine table): what byte-identity tests compare.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from '../../core/canonical-json.ts';

export function publishedHashes(out: string): Record<string, string> {
  const files = [
    'manifest.json',
    ...readdirSync(join(out, 'shards')).map((f) => `shards/${f}`),
    'quarantine/quarantine.parquet',
  ];
  return Object.fromEntries(files.map((f) => [f, sha256Hex(readFileSync(join(out, f)))]));
}
