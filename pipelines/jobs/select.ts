// select: from every part's keys decide exact-dedup winners (earliest component wins, ties by take key then id)
// and take-sets (the N smallest take keys), then fix the shard count. Writes a keep-mask per part.
// Memory: one entry per distinct content key and one take key per candidate (~100 B/sample); see docs/build.md.
import { storageFor } from '../../core/storage/index.ts';
import type { BuildContext } from '../context.ts';
import { readJson, writeJson } from '../json-io.ts';
import { buildLayout } from '../layout.ts';
import type { PartSummary } from './ingest.ts';
import type { BuildPlan } from './plan.ts';

export interface PartSelection {
  part: number;
  /** Base64 bitmap over the part's rows (row i kept ⇔ bit i set, LSB first). */
  mask: string;
  kept: number;
  dedup: number;
  notTaken: number;
}

export interface Selection {
  shards: number;
  totalEmitted: number;
  components: Record<
    string,
    { candidates: number; kept: number; emitted: number; dedup: number; notTaken: number }
  >;
}

interface KeyRow {
  takeKey: string;
  dedupKey: string;
  /** Encoded size of the record (images included), for `output.max_shard_bytes`. */
  bytes: number;
  id: string;
}

async function readKeys(ctx: BuildContext, n: number): Promise<KeyRow[]> {
  const uri = buildLayout(ctx.out).partKeys(n);
  const text = Buffer.from(await storageFor(uri).readAll(uri)).toString('utf8');
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const [takeKey, dedupKey, bytes, ...rest] = l.split('\t');
      return { takeKey, dedupKey, bytes: Number(bytes), id: rest.join('\t') };
    });
}

/** Total order on (take key, id): the take order and the dedup tie-break. */
function before(a: { takeKey: string; id: string }, b: { takeKey: string; id: string }): boolean {
  return a.takeKey < b.takeKey || (a.takeKey === b.takeKey && a.id < b.id);
}

export async function runSelect(ctx: BuildContext): Promise<Selection> {
  const layout = buildLayout(ctx.out);
  const plan = await readJson<BuildPlan>(layout.plan);
  const componentIndex = new Map(ctx.spec.components.map((c, i) => [c.name, i]));
  const parts: PartSummary[] = [];
  for (let n = 0; n < plan.partitions.length; n++)
    parts.push(await readJson<PartSummary>(layout.partSummary(n)));

  // Pass 1: the winner of every content key.
  const winners = new Map<string, { ci: number; takeKey: string; id: string }>();
  for (const p of parts) {
    const ci = componentIndex.get(p.component) as number;
    for (const k of await readKeys(ctx, p.part)) {
      const w = winners.get(k.dedupKey);
      if (!w || ci < w.ci || (ci === w.ci && before(k, w)))
        winners.set(k.dedupKey, { ci, takeKey: k.takeKey, id: k.id });
    }
  }
  const isWinner = (ci: number, k: KeyRow) => {
    const w = winners.get(k.dedupKey);
    return w !== undefined && w.ci === ci && w.id === k.id && w.takeKey === k.takeKey;
  };

  // Pass 2: per component, the take threshold among non-duplicates.
  const candidates = new Map<string, KeyRow[]>(ctx.spec.components.map((c) => [c.name, []]));
  for (const p of parts) {
    const ci = componentIndex.get(p.component) as number;
    for (const k of await readKeys(ctx, p.part)) if (isWinner(ci, k)) candidates.get(p.component)?.push(k);
  }
  const threshold = new Map<string, KeyRow | null>();
  const summary: Selection['components'] = {};
  let totalEmitted = 0;
  let totalBytes = 0;
  for (const c of ctx.spec.components) {
    const list = candidates.get(c.name) ?? [];
    list.sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
    let take = list.length;
    if (c.take?.count !== undefined) take = Math.min(c.take.count, list.length);
    else if (c.take?.fraction !== undefined) take = Math.round(c.take.fraction * list.length);
    threshold.set(c.name, take === 0 ? null : list[take - 1]);
    const repeat = c.repeat ?? 1;
    summary[c.name] = {
      candidates: list.length,
      kept: take,
      emitted: take * repeat,
      dedup: 0,
      notTaken: list.length - take,
    };
    totalEmitted += take * repeat;
    for (let i = 0; i < take; i++) totalBytes += list[i].bytes * repeat;
  }
  candidates.clear();

  // Pass 3: a keep-mask per part.
  for (const p of parts) {
    const ci = componentIndex.get(p.component) as number;
    const keys = await readKeys(ctx, p.part);
    const mask = Buffer.alloc(Math.ceil(keys.length / 8));
    const t = threshold.get(p.component);
    let kept = 0;
    let dedup = 0;
    let notTaken = 0;
    keys.forEach((k, i) => {
      if (!isWinner(ci, k)) dedup++;
      else if (t && !before(t, k)) {
        mask[i >> 3] |= 1 << (i & 7);
        kept++;
      } else notTaken++;
    });
    summary[p.component].dedup += dedup;
    const sel: PartSelection = { part: p.part, mask: mask.toString('base64'), kept, dedup, notTaken };
    await writeJson(layout.partSelection(p.part), sel);
  }
  // Enough shards for both limits; key ranges make shard sizes vary around the mean, so max_shard_bytes is a target.
  const maxBytes = ctx.spec.output.max_shard_bytes;
  const shards = Math.max(
    1,
    Math.ceil(totalEmitted / ctx.spec.output.shard_rows),
    maxBytes ? Math.ceil(totalBytes / maxBytes) : 1,
  );
  const selection: Selection = { shards, totalEmitted, components: summary };
  await writeJson(layout.select, selection);
  return selection;
}
