// Where every build artefact lives under the output URI. Deterministic names: a retried job rewrites the same keys.
import { joinUri } from '../core/storage/index.ts';

const pad = (n: number) => String(n).padStart(5, '0');

export function buildLayout(out: string) {
  const b = joinUri(out, '_build');
  return {
    out,
    plan: joinUri(b, 'plan.json'),
    select: joinUri(b, 'select.json'),
    nearDup: joinUri(b, 'near-dup.json'),
    contamination: joinUri(b, 'contamination.json'),
    nearDupPart: (n: number) => joinUri(b, 'near-dup', `part-${pad(n)}.json`),
    nearDupQuarantine: joinUri(b, 'near-dup', 'quarantine.jsonl'),
    nearDupBands: joinUri(b, 'near-dup', 'bands.json'),
    nearDupBandPairs: (n: number) => joinUri(b, 'near-dup', `band-${pad(n)}.pairs`),
    log: joinUri(b, 'log.jsonl'),
    done: (stage: string, n: number) => joinUri(b, 'done', `${stage}-${pad(n)}.json`),
    part: (n: number) => joinUri(b, 'parts', `part-${pad(n)}.rec`),
    partKeys: (n: number) => joinUri(b, 'parts', `part-${pad(n)}.keys`),
    partRows: (n: number) => joinUri(b, 'parts', `part-${pad(n)}.rows.jsonl`),
    partSummary: (n: number) => joinUri(b, 'parts', `part-${pad(n)}.json`),
    partSelection: (n: number) => joinUri(b, 'select', `part-${pad(n)}.json`),
    bucket: (n: number) => joinUri(b, 'buckets', `part-${pad(n)}.jsonl`),
    bucketIndex: (n: number) => joinUri(b, 'buckets', `part-${pad(n)}.json`),
    shardRoute: (s: number) => joinUri(b, 'routes', `shard-${pad(s)}.json`),
    partQuarantine: (n: number) => joinUri(b, 'quarantine', `part-${pad(n)}.jsonl`),
    shardName: (s: number) => `shards/shard-${pad(s)}.parquet`,
    shard: (s: number) => joinUri(out, 'shards', `shard-${pad(s)}.parquet`),
    quarantine: joinUri(out, 'quarantine', 'quarantine.parquet'),
    quarantineJsonl: joinUri(out, 'quarantine', 'quarantine.jsonl'),
    manifest: joinUri(out, 'manifest.json'),
    report: joinUri(out, 'report.html'),
  };
}

export type BuildLayout = ReturnType<typeof buildLayout>;

/** A shard file name as the build writes it (`shards/shard-00012.parquet`), relative to the output. */
export const SHARD_FILE = /^shards\/shard-\d{5,}\.parquet$/;
/** The suffix local storage gives a file while it is written (`writeAtomic`); a kill can leave one behind. */
export const TEMP_SUFFIX = /\.tmp-\d+-\d+$/;

const BUILD_FILES = [
  /^_build\//,
  /^manifest\.json$/,
  /^report\.html$/,
  /^quarantine\/quarantine\.(parquet|jsonl)$/,
  SHARD_FILE,
  // `mixforge tokens`: token counts per shard, checked against the manifest's shard hashes when read.
  /^tokens\/r\d+\//,
];

/**
 * True for a path (relative to the output) that mixforge writes there: the build, `report` and `tokens` after it.
 * Any other file in a build's output is someone else's, and stops the build.
 */
export function isBuildFile(rel: string): boolean {
  const name = rel.replace(TEMP_SUFFIX, '');
  return BUILD_FILES.some((re) => re.test(name));
}
