// The build context every job reads: the resolved spec, the output URI and the build options.
// Written once as `_build/context.json` so jobs on any machine (BullMQ) see the same inputs; Redis carries only ids.
import { canonicalJson, sha256Hex } from '../core/canonical-json.ts';
import { joinUri, storageFor } from '../core/storage/index.ts';
import { type MixtureSpec, specHash } from '../manifests/spec-schema.ts';

export interface BuildOptions {
  /** Aim for partitions of about this many records (parquet: whole row groups; json/jsonl: at most this many). */
  partitionRecords: number;
  /** Aim for json/jsonl partitions of at most about this many bytes. */
  partitionBytes: number;
  /** Keep `_build/parts` and `_build/buckets` after finalize (they hold a copy of every image). */
  keepIntermediate: boolean;
  /** Key rows select deduplicates in memory at once (bounds its memory; any value gives the same output). */
  selectBucketRows?: number;
}

export const DEFAULT_BUILD_OPTIONS: BuildOptions = {
  partitionRecords: 10_000,
  partitionBytes: 64 * 1024 * 1024,
  keepIntermediate: false,
};

export interface BuildContext {
  buildId: string;
  out: string;
  spec: MixtureSpec;
  specHash: string;
  options: BuildOptions;
}

/** The build id is a pure function of the spec and the output: re-submitting the same build yields the same jobs. */
export function makeBuildContext(
  spec: MixtureSpec,
  out: string,
  options: Partial<BuildOptions> = {},
): BuildContext {
  const hash = specHash(spec);
  const buildId = `${spec.name}-${sha256Hex(`${hash}\u0000${out}`).slice(0, 12)}`;
  return { buildId, out, spec, specHash: hash, options: { ...DEFAULT_BUILD_OPTIONS, ...options } };
}

export function contextUri(out: string): string {
  return joinUri(out, '_build', 'context.json');
}

export async function writeBuildContext(ctx: BuildContext): Promise<void> {
  await storageFor(ctx.out).writeAtomic(contextUri(ctx.out), `${canonicalJson(ctx)}\n`);
}

export async function readBuildContext(out: string): Promise<BuildContext> {
  const bytes = await storageFor(out).readAll(contextUri(out));
  return JSON.parse(Buffer.from(bytes).toString('utf8')) as BuildContext;
}
