// Writes the token-count sidecar of a built mixture (format: manifests/token-counts.ts) with the training loop's
// tokenizer and chat template, as a sharded task (pipelines/task.ts): one job per shard, in this process or on a
// fleet. One file per shard, written atomically: a rerun skips the shards already counted, so counting resumes; the
// bytes depend only on the shard and the settings, never on who counted it.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { DeterministicInputError } from '../../core/errors.ts';
import { joinUri, storageFor } from '../../core/storage/index.ts';
import { manifestRoot, readManifest } from '../../manifests/manifest.ts';
import { SHARD_ROW_GROUP } from '../../manifests/shard-format.ts';
import {
  TOKEN_COUNT_ROW_BYTES,
  TOKEN_COUNTS_KIND,
  type TokenCountsIndex,
  tokenCountsDir,
  tokenCountsFile,
} from '../../manifests/token-counts.ts';
import { runTaskInProcess, type ShardedTask } from '../../pipelines/task.ts';
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

/** What a fleet worker rebuilds a token-count task from (`mixforge tokens --redis`): URIs and settings only. */
export const TokenTaskPayloadSchema = z.strictObject({
  manifest: z.string().min(1),
  resolution: z.number().int().min(64).multipleOf(64),
  imageTokenPosition: z.enum(['data', 'front']),
  /** A tokenizer.json every worker can read (shared storage); absent: the vocabulary shipped with mixforge. */
  tokenizer: z.string().min(1).optional(),
});
export type TokenTaskPayload = z.infer<typeof TokenTaskPayloadSchema>;

/**
 * The sidecar as a sharded task: one unit per shard, then the index. Units are idempotent (a shard's file is written
 * atomically and skipped when present), and prepare() makes "present" mean "counted with these settings for these
 * shards": it removes the files of any other settings or mixture before counting starts.
 */
export async function tokenCountTask(
  payload: TokenTaskPayload,
): Promise<ShardedTask & { index: TokenCountsIndex }> {
  const m = await readManifest(payload.manifest);
  const root = manifestRoot(payload.manifest);
  const tokenizerPath = payload.tokenizer ?? shippedTokenizerPath();
  const tok = await loadQwen2Tokenizer(tokenizerPath);
  const tokenizerBytes = await storageFor(tokenizerPath).readAll(tokenizerPath);
  const index: TokenCountsIndex = {
    kind: TOKEN_COUNTS_KIND,
    version: 1,
    resolution: payload.resolution,
    tokensPerImage: tokensPerImageAt(payload.resolution),
    imageTokenPosition: payload.imageTokenPosition,
    tokenizer: createHash('sha256').update(tokenizerBytes).digest('hex'),
    shards: m.shards.map(({ path, rows, sha256 }) => ({ path, rows, sha256 })),
  };
  const indexText = `${JSON.stringify(index, null, 2)}\n`;
  const dir = tokenCountsDir(root, payload.resolution);
  const indexUri = joinUri(dir, 'index.json');
  // What the counts being written are for, while the index vouches for none of them (a crash leaves no index that
  // vouches for missing files); a rerun with the same settings and shards resumes from the files already written.
  const pendingUri = joinUri(dir, 'pending.json');
  const storage = storageFor(indexUri);
  const readText = async (uri: string) =>
    (await storage.stat(uri)) ? Buffer.from(await storage.readAll(uri)).toString('utf8') : undefined;
  const source = new RowGroupSource(root, m.shards, { rowGroupSize: SHARD_ROW_GROUP, decodedGroups: 2 });
  return {
    kind: 'tokens',
    id: `tokens-${createHash('sha256').update(`${payload.manifest}\u0000${indexText}`).digest('hex').slice(0, 16)}`,
    payload,
    units: m.shards.length,
    index,
    async prepare() {
      if ((await readText(indexUri)) === indexText || (await readText(pendingUri)) === indexText) return;
      // Counts made with other settings (or for other shards) are never mixed with these: start over.
      for await (const o of storage.list(`${dir}/`)) if (o.uri.endsWith('.u32')) await storage.delete(o.uri);
      await storage.writeAtomic(pendingUri, indexText);
      await storage.writeAtomic(indexUri, `${JSON.stringify({ ...index, shards: [] }, null, 2)}\n`);
    },
    async runUnit(s, signal) {
      const shard = m.shards[s];
      const uri = tokenCountsFile(dir, shard.path);
      const have = await storageFor(uri).stat(uri);
      if (have && have.size === shard.rows * TOKEN_COUNT_ROW_BYTES) return { ran: false };
      // Tokens (uint32 per row), then the reference's modality length (int32 per row) in one file.
      const bytes = new ArrayBuffer(shard.rows * TOKEN_COUNT_ROW_BYTES);
      const counts = new Uint32Array(bytes, 0, shard.rows);
      const modality = new Int32Array(bytes, shard.rows * 4, shard.rows);
      for (let g = 0; g * SHARD_ROW_GROUP < shard.rows; g++) {
        signal?.throwIfAborted();
        const rows = await source.rows(s, g);
        rows.forEach((row, i) => {
          const at = g * SHARD_ROW_GROUP + i;
          counts[at] = sampleTokens(row, tok, index.tokensPerImage, index.imageTokenPosition);
          modality[at] = modalityLength(row.conversations, row.images.length > 0);
        });
      }
      await storageFor(uri).writeAtomic(uri, Buffer.from(bytes));
      return { ran: true };
    },
    async finish() {
      for (const shard of m.shards) {
        const uri = tokenCountsFile(dir, shard.path);
        const have = await storageFor(uri).stat(uri);
        if (have?.size !== shard.rows * TOKEN_COUNT_ROW_BYTES)
          throw new Error(`tokens: ${uri} is missing or short: the index cannot vouch for it`);
      }
      // The full index last, once every shard's counts are written.
      await storage.writeAtomic(indexUri, indexText);
      await storage.delete(pendingUri);
    },
  };
}

/** A fleet worker's handler for `tokens` tasks: validates the payload, then builds the task. */
export async function tokenTaskFromPayload(payload: unknown): Promise<ShardedTask> {
  const r = TokenTaskPayloadSchema.safeParse(payload);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new DeterministicInputError(
      `tokens task payload: field ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`,
    );
  }
  return tokenCountTask(r.data);
}

/** Count every shard of the mixture at `manifestUri` not yet counted, in this process; returns the index. */
export async function writeTokenCounts(
  manifestUri: string,
  opts: TokenCountOptions,
): Promise<TokenCountsIndex> {
  const task = await tokenCountTask({
    manifest: manifestUri,
    resolution: opts.resolution,
    imageTokenPosition: opts.imageTokenPosition ?? 'data',
    ...(opts.tokenizerPath ? { tokenizer: opts.tokenizerPath } : {}),
  });
  await runTaskInProcess(task, { concurrency: opts.concurrency, onUnit: opts.onShard });
  return task.index;
}

export { readTokenCounts, type TokenCountsIndex, tokenCountsDir } from '../../manifests/token-counts.ts';
