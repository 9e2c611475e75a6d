// The result of the last `mixforge verify` of a build, kept in `_build/verify.json` (beside the manifest, never in
// it), so report.html can state it without re-reading every shard; it names the manifest bytes it checked.
import { createHash } from 'node:crypto';
import { joinUri, storageFor } from '../core/storage/index.ts';
import { manifestRoot, manifestUri, verifyBuild } from './manifest.ts';

export interface VerifyRecord {
  checkedAt: string;
  /** sha256 of the manifest.json that was verified: a record of an older build does not count. */
  manifestSha256: string;
  /** verify's mismatches; empty when the build verified. */
  problems: string[];
}

const recordUri = (out: string) => joinUri(manifestRoot(out), '_build', 'verify.json');

async function manifestSha256(out: string): Promise<string> {
  const uri = manifestUri(out);
  return createHash('sha256')
    .update(await storageFor(uri).readAll(uri))
    .digest('hex');
}

/** Runs verify and records its result; returns the problems (empty = verified). */
export async function verifyAndRecord(out: string): Promise<string[]> {
  const problems = await verifyBuild(out);
  const record: VerifyRecord = {
    checkedAt: new Date().toISOString(),
    manifestSha256: await manifestSha256(out),
    problems,
  };
  const uri = recordUri(out);
  await storageFor(uri).writeAtomic(uri, `${JSON.stringify(record, null, 2)}\n`);
  return problems;
}

/** The last verify of this very manifest, or undefined when it was never verified (or rebuilt since). */
export async function readVerifyRecord(out: string): Promise<VerifyRecord | undefined> {
  const uri = recordUri(out);
  const s = storageFor(uri);
  if (!(await s.stat(uri))) return undefined;
  const record = JSON.parse(Buffer.from(await s.readAll(uri)).toString('utf8')) as VerifyRecord;
  return record.manifestSha256 === (await manifestSha256(out)) ? record : undefined;
}
