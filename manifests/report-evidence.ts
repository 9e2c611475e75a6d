// What report.html shows beyond the manifest's counts: sample previews (thumbnail + conversation) per component and
// sub-source, quarantine examples, and the build's metadata (dates from the done markers, never from the manifest).
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { openParquet, readRowGroups } from '../core/parquet/read.ts';
import { joinUri, storageFor } from '../core/storage/index.ts';
import { type Manifest, manifestRoot } from './manifest.ts';
import { type TokenHistogram, tokenHistograms } from './token-counts.ts';
import { verifiedShardSamples } from './verified-shard.ts';
import { readVerifyRecord, type VerifyRecord } from './verify-record.ts';

export interface SamplePreview {
  component: string;
  source: string;
  id: string;
  origin: string;
  /** JPEG thumbnails as data: URIs, one per image (at most THUMBS_PER_SAMPLE). */
  thumbnails: string[];
  images: number;
  conversation: { from: string; value: string }[];
}

export interface QuarantineExample {
  component: string;
  origin: string;
  reason: string;
  message: string;
}

export interface BuildInfo {
  /** ISO times from the plan and finalize done markers (`_build/done/`), when they are there. */
  started?: string;
  finished?: string;
  seconds?: number;
  mixforgeVersion: string;
  /** The last `mixforge verify` of this manifest (`_build/verify.json`); undefined when it was not verified. */
  verify?: VerifyRecord;
}

export interface ReportEvidence {
  samples: SamplePreview[];
  quarantine: QuarantineExample[];
  build: BuildInfo;
  /** Token-length histograms, one per resolution `mixforge tokens` counted (absent or empty when never run). */
  tokens?: TokenHistogram[];
}

/** Samples shown per (component, sub-source), quarantine examples per (component, reason), and their caps. */
export const SAMPLES_PER_SOURCE = 2;
export const QUARANTINE_PER_REASON = 3;
const THUMBS_PER_SAMPLE = 2;
const THUMB_SIDE = 192;
/** Characters of one turn shown; longer turns are cut with an ellipsis. */
const TURN_CHARS = 600;
/** Shards read at most while looking for samples of every sub-source (a rare one may not be found in a big build). */
const MAX_SHARDS_SCANNED = 16;

async function thumbnail(bytes: Uint8Array): Promise<string> {
  const jpeg = await sharp(bytes)
    .resize(THUMB_SIDE, THUMB_SIDE, { fit: 'inside', withoutEnlargement: true })
    .flatten({ background: '#ffffff' })
    .jpeg({ quality: 75 })
    .toBuffer();
  return `data:image/jpeg;base64,${jpeg.toString('base64')}`;
}

/** The component an origin came from: the input file its URI names (origins are `<input uri>#<locator>`). */
function componentOf(m: Manifest): (origin: string) => string {
  const inputs = [...m.inputs].sort((a, b) => b.uri.length - a.uri.length);
  return (origin) =>
    inputs.find((i) => origin === i.uri || origin.startsWith(`${i.uri}#`) || origin.startsWith(`${i.uri}/`))
      ?.component ?? '?';
}

/** The first SAMPLES_PER_SOURCE rows of every (component, sub-source) in shard order (key order: a keyed sample). */
export async function samplePreviews(m: Manifest, root: string): Promise<SamplePreview[]> {
  const wanted = new Map<string, number>();
  for (const [component, sources] of Object.entries(m.stats.bySource))
    for (const source of Object.keys(sources)) wanted.set(`${component}\u0000${source}`, 0);
  const component = componentOf(m);
  const out: SamplePreview[] = [];
  const missing = () => [...wanted.values()].some((n) => n < SAMPLES_PER_SOURCE);
  for (const shard of m.shards.slice(0, MAX_SHARDS_SCANNED)) {
    if (!missing()) break;
    for await (const s of verifiedShardSamples(root, shard)) {
      const c = component(s.origin);
      const key = `${c}\u0000${s.source}`;
      const have = wanted.get(key) ?? 0;
      if (have >= SAMPLES_PER_SOURCE) continue;
      wanted.set(key, have + 1);
      out.push({
        component: c,
        source: s.source,
        id: s.id,
        origin: s.origin,
        images: s.images.length,
        thumbnails: await Promise.all(s.images.slice(0, THUMBS_PER_SAMPLE).map((im) => thumbnail(im.bytes))),
        conversation: s.conversations.map((t) => ({
          from: t.from,
          value: t.value.length > TURN_CHARS ? `${t.value.slice(0, TURN_CHARS)}…` : t.value,
        })),
      });
      if (!missing()) break;
    }
  }
  const order = (p: SamplePreview) => `${p.component}\u0000${p.source}`;
  return out.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
}

/** Up to QUARANTINE_PER_REASON records of every (component, reason), from the quarantine table. */
export async function quarantineExamples(m: Manifest, root: string): Promise<QuarantineExample[]> {
  if (m.quarantine.rows === 0) return [];
  const handle = await openParquet(joinUri(root, m.quarantine.path));
  const seen = new Map<string, number>();
  const out: QuarantineExample[] = [];
  const columns = ['component', 'origin', 'reason', 'message'];
  for await (const { rows } of readRowGroups(handle, { start: 0, end: handle.rowGroups.length, columns })) {
    for (const r of rows) {
      const q = Object.fromEntries(
        columns.map((k) => [k, String(r[k] ?? '')]),
      ) as unknown as QuarantineExample;
      const key = `${q.component}\u0000${q.reason}`;
      const n = seen.get(key) ?? 0;
      if (n >= QUARANTINE_PER_REASON) continue;
      seen.set(key, n + 1);
      out.push(q);
    }
  }
  return out;
}

interface DoneMarkerTimes {
  startedAt?: string;
  finishedAt?: string;
}

/** A done marker of pipelines/jobs (`_build/done/<stage>-<n>.json`, layout.done): the build log of that job. */
async function doneMarker(root: string, stage: string): Promise<DoneMarkerTimes | undefined> {
  const uri = joinUri(root, '_build', 'done', `${stage}-00000.json`);
  const s = storageFor(uri);
  if (!(await s.stat(uri))) return undefined;
  return JSON.parse(Buffer.from(await s.readAll(uri)).toString('utf8')) as DoneMarkerTimes;
}

async function mixforgeVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/** Start and end of the build from its plan and finalize markers (a resumed build counts from its first plan). */
export async function buildInfo(root: string): Promise<BuildInfo> {
  const plan = await doneMarker(root, 'plan');
  const finalize = await doneMarker(root, 'finalize');
  const started = plan?.startedAt;
  const finished = finalize?.finishedAt;
  const seconds = started && finished ? (Date.parse(finished) - Date.parse(started)) / 1000 : undefined;
  const verify = await readVerifyRecord(root);
  return {
    started,
    finished,
    seconds,
    mixforgeVersion: await mixforgeVersion(),
    ...(verify ? { verify } : {}),
  };
}

export async function gatherEvidence(m: Manifest, out: string): Promise<ReportEvidence> {
  const root = manifestRoot(out);
  return {
    samples: await samplePreviews(m, root),
    quarantine: await quarantineExamples(m, root),
    build: await buildInfo(root),
    tokens: await tokenHistograms(out),
  };
}
