// The token-count sidecar of a built mixture: per sample, the tokens the training loop will see (the rendered
// conv_qwen_2 conversation + the image tokens at a resolution), for packing, length grouping and the report.
// Layout under the mixture: tokens/r<R>/shard-NNNNN.u32 (little-endian uint32, one per row in shard order) and
// tokens/r<R>/index.json (what the counts depend on). One file per shard, written atomically: a rerun skips the
// shards already counted, so counting resumes; the bytes depend only on the shard and the settings.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { MixforgeError } from '../../core/errors.ts';
import { joinUri, storageFor } from '../../core/storage/index.ts';
import { manifestRoot, readManifest } from '../../manifests/manifest.ts';
import { SHARD_ROW_GROUP } from '../../manifests/shard-format.ts';
import {
  IMAGE_TOKEN_INDEX,
  type ImageTokenPosition,
  loadQwen2Tokenizer,
  type Qwen2Tokenizer,
  shippedTokenizerPath,
  tokenizeConversation,
  tokensPerImageAt,
} from '../text/index.ts';
import { RowGroupSource, type ShardRow } from './row-group-source.ts';

export const TOKEN_COUNTS_KIND = 'mixforge.token-counts';

const IndexSchema = z.strictObject({
  kind: z.literal(TOKEN_COUNTS_KIND),
  version: z.literal(1),
  resolution: z.number().int().min(1),
  tokensPerImage: z.number().int().min(1),
  imageTokenPosition: z.enum(['data', 'front']),
  /** sha256 of the tokenizer.json the counts were made with. */
  tokenizer: z.string(),
  shards: z.array(z.strictObject({ path: z.string(), rows: z.number().int().min(0), sha256: z.string() })),
});
export type TokenCountsIndex = z.infer<typeof IndexSchema>;

export class TokenCountsError extends MixforgeError {
  override name = 'TokenCountsError';
}

export interface TokenCountOptions {
  resolution: number;
  imageTokenPosition?: ImageTokenPosition;
  /** A checkpoint's tokenizer.json (default: the Qwen2 vocabulary shipped with mixforge). */
  tokenizerPath?: string;
  /** Shards counted at once. */
  concurrency?: number;
  onShard?: (done: number, total: number, skipped: boolean) => void;
}

export const tokenCountsDir = (root: string, resolution: number) => joinUri(root, 'tokens', `r${resolution}`);
const countsFile = (dir: string, shardPath: string) =>
  joinUri(dir, `${shardPath.replace(/^.*\//, '').replace(/\.parquet$/, '')}.u32`);

/** Tokens of one sample: rendered conversation (system turn included) plus every image's tokens. */
export function sampleTokens(
  row: Pick<ShardRow, 'conversations'>,
  tok: Qwen2Tokenizer,
  tokensPerImage: number,
  imageTokenPosition: ImageTokenPosition,
): number {
  const t = tokenizeConversation(row.conversations, tok, {
    imageTokenPosition,
    maxLength: Number.MAX_SAFE_INTEGER,
  });
  let images = 0;
  for (const id of t.ids) if (id === IMAGE_TOKEN_INDEX) images++;
  return t.ids.length + images * (tokensPerImage - 1);
}

/** Count every shard of the mixture at `manifestUri` not yet counted; returns the index. */
export async function writeTokenCounts(
  manifestUri: string,
  opts: TokenCountOptions,
): Promise<TokenCountsIndex> {
  const m = await readManifest(manifestUri);
  const root = manifestRoot(manifestUri);
  const tokenizerPath = opts.tokenizerPath ?? shippedTokenizerPath();
  const tok = await loadQwen2Tokenizer(tokenizerPath);
  const tokenizerBytes = await storageFor(tokenizerPath).readAll(tokenizerPath);
  const index: TokenCountsIndex = {
    kind: TOKEN_COUNTS_KIND,
    version: 1,
    resolution: opts.resolution,
    tokensPerImage: tokensPerImageAt(opts.resolution),
    imageTokenPosition: opts.imageTokenPosition ?? 'data',
    tokenizer: createHash('sha256').update(tokenizerBytes).digest('hex'),
    shards: m.shards.map(({ path, rows, sha256 }) => ({ path, rows, sha256 })),
  };
  const dir = tokenCountsDir(root, opts.resolution);
  const indexUri = joinUri(dir, 'index.json');
  const storage = storageFor(indexUri);
  // Counts made with other settings (or for other shards) are never mixed with these: start over.
  const old = await readIndexIfExists(indexUri);
  const reuse = old !== undefined && JSON.stringify(old) === JSON.stringify(index);
  const source = new RowGroupSource(root, m.shards, { rowGroupSize: SHARD_ROW_GROUP, decodedGroups: 2 });
  let next = 0;
  let done = 0;
  const work = async () => {
    for (let s = next++; s < m.shards.length; s = next++) {
      const shard = m.shards[s];
      const uri = countsFile(dir, shard.path);
      const have = reuse ? await storageFor(uri).stat(uri) : undefined;
      if (have && have.size === shard.rows * 4) {
        opts.onShard?.(++done, m.shards.length, true);
        continue;
      }
      const counts = new Uint32Array(shard.rows);
      for (let g = 0; g * SHARD_ROW_GROUP < shard.rows; g++) {
        const rows = await source.rows(s, g);
        rows.forEach((row, i) => {
          counts[g * SHARD_ROW_GROUP + i] = sampleTokens(
            row,
            tok,
            index.tokensPerImage,
            index.imageTokenPosition,
          );
        });
      }
      await storageFor(uri).writeAtomic(
        uri,
        Buffer.from(counts.buffer, counts.byteOffset, counts.byteLength),
      );
      opts.onShard?.(++done, m.shards.length, false);
    }
  };
  // The index goes first with no shards, so a crash leaves no index that vouches for missing files…
  if (!reuse) await storage.writeAtomic(indexUri, `${JSON.stringify({ ...index, shards: [] }, null, 2)}\n`);
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 2) }, work));
  // …and the full index last, once every shard's counts are written.
  await storage.writeAtomic(indexUri, `${JSON.stringify(index, null, 2)}\n`);
  return index;
}

async function readIndexIfExists(uri: string): Promise<TokenCountsIndex | undefined> {
  const info = await storageFor(uri).stat(uri);
  if (!info) return undefined;
  const parsed = IndexSchema.safeParse(
    JSON.parse(Buffer.from(await storageFor(uri).readAll(uri)).toString('utf8')),
  );
  if (!parsed.success)
    throw new TokenCountsError(`${uri}: not a token-count index (${parsed.error.issues[0].message})`);
  return parsed.data;
}

/** Per-shard token counts of a mixture, as written by writeTokenCounts; checked against the manifest's shards. */
export async function readTokenCounts(manifestUri: string, resolution: number): Promise<Uint32Array[]> {
  const m = await readManifest(manifestUri);
  const dir = tokenCountsDir(manifestRoot(manifestUri), resolution);
  const indexUri = joinUri(dir, 'index.json');
  const index = await readIndexIfExists(indexUri);
  if (!index)
    throw new TokenCountsError(
      `${indexUri}: no token counts at resolution ${resolution} (run: mixforge tokens ${manifestUri} --resolution ${resolution})`,
    );
  const same =
    index.shards.length === m.shards.length &&
    index.shards.every((s, i) => s.path === m.shards[i].path && s.sha256 === m.shards[i].sha256);
  if (!same)
    throw new TokenCountsError(
      `${indexUri}: the counts are incomplete or for other shards than ${manifestUri} (rerun mixforge tokens)`,
    );
  return Promise.all(
    m.shards.map(async (s) => {
      const uri = countsFile(dir, s.path);
      const bytes = await storageFor(uri).readAll(uri);
      if (bytes.byteLength !== s.rows * 4)
        throw new TokenCountsError(
          `${uri}: ${bytes.byteLength} bytes, expected ${s.rows * 4} (${s.rows} rows)`,
        );
      const copy = new Uint8Array(bytes);
      return new Uint32Array(copy.buffer, 0, s.rows);
    }),
  );
}
