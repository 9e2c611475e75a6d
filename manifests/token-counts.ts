// The token-count sidecar's format (written by `mixforge tokens`, train-bridge/loader/token-counts.ts): per sample,
// the tokens the training loop sees (rendered conv_qwen_2 conversation + image tokens at a resolution) and the
// reference's modality length (± words, negative without images, for group_by_modality_length). Layout under the
// mixture: tokens/r<R>/shard-NNNNN.u32 (little-endian: one uint32 token count per row in shard order, then one int32
// modality length per row) and tokens/r<R>/index.json (what the counts depend on). Readers (loader packing and
// length grouping, report) use only this file.
import { z } from 'zod';
import { MixforgeError } from '../core/errors.ts';
import { openParquet, readRowGroups } from '../core/parquet/read.ts';
import { joinUri, storageFor } from '../core/storage/index.ts';
import { type Manifest, manifestRoot, readManifest } from './manifest.ts';
import { binOf } from './stats.ts';

export const TOKEN_COUNTS_KIND = 'mixforge.token-counts';

export const TokenCountsIndexSchema = z.strictObject({
  kind: z.literal(TOKEN_COUNTS_KIND),
  version: z.literal(1),
  resolution: z.number().int().min(1),
  tokensPerImage: z.number().int().min(1),
  imageTokenPosition: z.enum(['data', 'front']),
  /** sha256 of the tokenizer.json the counts were made with. */
  tokenizer: z.string(),
  shards: z.array(z.strictObject({ path: z.string(), rows: z.number().int().min(0), sha256: z.string() })),
});
export type TokenCountsIndex = z.infer<typeof TokenCountsIndexSchema>;

export class TokenCountsError extends MixforgeError {
  override name = 'TokenCountsError';
}

/** Bytes per row in a shard's file: the token count and the modality length. */
export const TOKEN_COUNT_ROW_BYTES = 8;

export const tokenCountsDir = (root: string, resolution: number) => joinUri(root, 'tokens', `r${resolution}`);
export const tokenCountsFile = (dir: string, shardPath: string) =>
  joinUri(dir, `${shardPath.replace(/^.*\//, '').replace(/\.parquet$/, '')}.u32`);

export async function readTokenCountsIndex(uri: string): Promise<TokenCountsIndex | undefined> {
  const info = await storageFor(uri).stat(uri);
  if (!info) return undefined;
  const parsed = TokenCountsIndexSchema.safeParse(
    JSON.parse(Buffer.from(await storageFor(uri).readAll(uri)).toString('utf8')),
  );
  if (!parsed.success)
    throw new TokenCountsError(`${uri}: not a token-count index (${parsed.error.issues[0].message})`);
  return parsed.data;
}

/** Per-shard sidecar rows of a mixture, as written by writeTokenCounts; checked against the manifest's shards. */
export async function readTokenSidecar(
  manifestUri: string,
  resolution: number,
): Promise<{ tokens: Uint32Array; modality: Int32Array }[]> {
  const m = await readManifest(manifestUri);
  const dir = tokenCountsDir(manifestRoot(manifestUri), resolution);
  const indexUri = joinUri(dir, 'index.json');
  const index = await readTokenCountsIndex(indexUri);
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
      const uri = tokenCountsFile(dir, s.path);
      const bytes = await storageFor(uri).readAll(uri);
      const want = s.rows * TOKEN_COUNT_ROW_BYTES;
      if (bytes.byteLength !== want)
        throw new TokenCountsError(`${uri}: ${bytes.byteLength} bytes, expected ${want} (${s.rows} rows)`);
      const copy = new Uint8Array(bytes).buffer;
      return { tokens: new Uint32Array(copy, 0, s.rows), modality: new Int32Array(copy, s.rows * 4, s.rows) };
    }),
  );
}

/** Per-shard token counts of a mixture (row order), as written by writeTokenCounts. */
export async function readTokenCounts(manifestUri: string, resolution: number): Promise<Uint32Array[]> {
  return (await readTokenSidecar(manifestUri, resolution)).map((s) => s.tokens);
}

/** Bin edges of the report's token-length histograms (tokens per sample). */
export const TOKEN_BINS = [0, 256, 384, 512, 768, 1024, 1536, 2048, 4096, 8192];

export interface TokenHistogram {
  resolution: number;
  /** Per component (from the sample id's `<component>/` prefix): samples per bin of TOKEN_BINS, mean and max. */
  components: { name: string; bins: number[]; samples: number; mean: number; max: number }[];
}

/** The resolutions whose token counts are complete for this mixture (an index that lists every shard). */
async function countedResolutions(manifestUri: string, m: Manifest): Promise<number[]> {
  const dir = joinUri(manifestRoot(manifestUri), 'tokens');
  const found: number[] = [];
  for await (const o of storageFor(dir).list(dir)) {
    const r = /\/r(\d+)\/index\.json$/.exec(o.uri);
    if (!r) continue;
    const index = await readTokenCountsIndex(o.uri);
    if (index?.shards.length === m.shards.length) found.push(Number(r[1]));
  }
  return found.sort((a, b) => a - b);
}

/**
 * Token-length histograms per component for every resolution `mixforge tokens` counted (none when it never ran).
 * Reads only the shards' id column besides the sidecar.
 */
export async function tokenHistograms(manifestUri: string): Promise<TokenHistogram[]> {
  const m = await readManifest(manifestUri);
  const resolutions = await countedResolutions(manifestUri, m);
  if (!resolutions.length) return [];
  const root = manifestRoot(manifestUri);
  const componentOf: string[][] = [];
  for (const s of m.shards) {
    const handle = await openParquet(joinUri(root, s.path));
    const names: string[] = [];
    for await (const { rows } of readRowGroups(handle, {
      start: 0,
      end: handle.rowGroups.length,
      columns: ['id'],
    }))
      for (const r of rows)
        names.push(
          String(r.id instanceof Uint8Array ? Buffer.from(r.id).toString('utf8') : r.id).split('/')[0],
        );
    componentOf.push(names);
  }
  const out: TokenHistogram[] = [];
  for (const resolution of resolutions) {
    const counts = await readTokenCounts(manifestUri, resolution);
    const per = new Map<string, { bins: number[]; samples: number; sum: number; max: number }>();
    for (const c of m.components)
      per.set(c.name, { bins: TOKEN_BINS.map(() => 0), samples: 0, sum: 0, max: 0 });
    for (const [s, shard] of counts.entries())
      for (const [row, n] of shard.entries()) {
        const name = componentOf[s][row];
        let h = per.get(name);
        if (!h) {
          h = { bins: TOKEN_BINS.map(() => 0), samples: 0, sum: 0, max: 0 };
          per.set(name, h);
        }
        h.bins[binOf(TOKEN_BINS, n)]++;
        h.samples++;
        h.sum += n;
        h.max = Math.max(h.max, n);
      }
    out.push({
      resolution,
      components: [...per].map(([name, h]) => ({
        name,
        bins: h.bins,
        samples: h.samples,
        mean: h.samples ? h.sum / h.samples : 0,
        max: h.max,
      })),
    });
  }
  return out;
}
