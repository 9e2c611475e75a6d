// Writes the token-count sidecar of a built mixture (format: manifests/token-counts.ts) with the training loop's
// tokenizer and chat template. One file per shard, written atomically: a rerun skips the shards already counted, so
// counting resumes; the bytes depend only on the shard and the settings.
import { createHash } from 'node:crypto';
import { joinUri, storageFor } from '../../core/storage/index.ts';
import { manifestRoot, readManifest } from '../../manifests/manifest.ts';
import { SHARD_ROW_GROUP } from '../../manifests/shard-format.ts';
import {
  readTokenCountsIndex,
  TOKEN_COUNT_ROW_BYTES,
  TOKEN_COUNTS_KIND,
  type TokenCountsIndex,
  tokenCountsDir,
  tokenCountsFile,
} from '../../manifests/token-counts.ts';
import {
  IMAGE_TOKEN_INDEX,
  type ImageTokenPosition,
  loadQwen2Tokenizer,
  modalityLength,
  type Qwen2Tokenizer,
  shippedTokenizerPath,
  tokenizeConversation,
  tokensPerImageAt,
} from '../text/index.ts';
import { RowGroupSource, type ShardRow } from './row-group-source.ts';

export interface TokenCountOptions {
  resolution: number;
  imageTokenPosition?: ImageTokenPosition;
  /** A checkpoint's tokenizer.json (default: the Qwen2 vocabulary shipped with mixforge). */
  tokenizerPath?: string;
  /** Shards counted at once. */
  concurrency?: number;
  onShard?: (done: number, total: number, skipped: boolean) => void;
}

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
  const old = await readTokenCountsIndex(indexUri);
  const reuse = old !== undefined && JSON.stringify(old) === JSON.stringify(index);
  const source = new RowGroupSource(root, m.shards, { rowGroupSize: SHARD_ROW_GROUP, decodedGroups: 2 });
  let next = 0;
  let done = 0;
  const work = async () => {
    for (let s = next++; s < m.shards.length; s = next++) {
      const shard = m.shards[s];
      const uri = tokenCountsFile(dir, shard.path);
      const have = reuse ? await storageFor(uri).stat(uri) : undefined;
      if (have && have.size === shard.rows * TOKEN_COUNT_ROW_BYTES) {
        opts.onShard?.(++done, m.shards.length, true);
        continue;
      }
      // Tokens (uint32 per row), then the reference's modality length (int32 per row) in one file.
      const bytes = new ArrayBuffer(shard.rows * TOKEN_COUNT_ROW_BYTES);
      const counts = new Uint32Array(bytes, 0, shard.rows);
      const modality = new Int32Array(bytes, shard.rows * 4, shard.rows);
      for (let g = 0; g * SHARD_ROW_GROUP < shard.rows; g++) {
        const rows = await source.rows(s, g);
        rows.forEach((row, i) => {
          const at = g * SHARD_ROW_GROUP + i;
          counts[at] = sampleTokens(row, tok, index.tokensPerImage, index.imageTokenPosition);
          modality[at] = modalityLength(row.conversations, row.images.length > 0);
        });
      }
      await storageFor(uri).writeAtomic(uri, Buffer.from(bytes));
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

export { readTokenCounts, type TokenCountsIndex, tokenCountsDir } from '../../manifests/token-counts.ts';
