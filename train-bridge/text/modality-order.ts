// The reference's `group_by_modality_length` sampler (LLaVATrainer's LengthGroupedSampler): batches hold one
// modality (image or text-only) of similar length. Its torch.randperm calls become keyed hashes of (seed, epoch, id).
import { keyedHash64 } from '../../core/keyed-hash.ts';
import { pythonWordCount } from './python-whitespace.ts';

/** Purposes of the keyed hashes: part of the order, so changing them changes every run's order. */
export const LENGTH_SHUFFLE_PURPOSE = 'modality-length-shuffle';
export const MEGABATCH_SHUFFLE_PURPOSE = 'modality-megabatch-shuffle';

/** The reference's `modality_lengths` entry: words over all turns, negative for a sample without images. */
export function modalityLength(turns: readonly { value: string }[], hasImage: boolean): number {
  const words = turns.reduce((n, t) => n + pythonWordCount(t.value), 0);
  return hasImage ? words : -words;
}

export interface ModalityOrderOptions {
  /** Micro-batch size. */
  batchSize: number;
  /** Devices × accumulation steps (the reference passes world_size * gradient_accumulation_steps). */
  worldSize: number;
  seed: number | string;
  epoch: number;
}

/** A keyed stand-in for torch.randperm over `keys`: order by keyed hash, ties by position. */
function keyedPermutation(
  keys: readonly string[],
  seed: number | string,
  purpose: string,
  epoch: number,
): number[] {
  const hashes = keys.map((k) => keyedHash64(seed, purpose, `${epoch}\u0000${k}`));
  return keys
    .map((_, i) => i)
    .sort((a, b) => (hashes[a] < hashes[b] ? -1 : hashes[a] > hashes[b] ? 1 : a - b));
}

/** `split_to_even_chunks`: deal indices to the chunk with the least total length so far. */
function splitToEvenChunks(
  indices: readonly number[],
  lengths: readonly number[],
  chunks: number,
): number[][] {
  if (indices.length % chunks !== 0)
    return Array.from({ length: chunks }, (_, c) => indices.filter((_, i) => i % chunks === c));
  const perChunk = indices.length / chunks;
  const out: number[][] = Array.from({ length: chunks }, () => []);
  const totals = new Array<number>(chunks).fill(0);
  for (const index of indices) {
    const shortest = totals.indexOf(Math.min(...totals));
    out[shortest].push(index);
    totals[shortest] += lengths[index];
    if (out[shortest].length === perChunk) totals[shortest] = Number.POSITIVE_INFINITY;
  }
  return out;
}

/** `get_length_grouped_indices`: shuffle, cut into megabatches, sort each by length (longest first), deal out. */
function lengthGroupedIndices(
  lengths: readonly number[],
  ids: readonly string[],
  opts: ModalityOrderOptions,
): number[] {
  const order = keyedPermutation(ids, opts.seed, LENGTH_SHUFFLE_PURPOSE, opts.epoch);
  const megabatchSize = opts.worldSize * opts.batchSize;
  const out: number[] = [];
  for (let i = 0; i < order.length; i += megabatchSize) {
    // Array.prototype.sort is stable, like Python's sorted.
    const megabatch = order.slice(i, i + megabatchSize).sort((a, b) => lengths[b] - lengths[a]);
    for (const chunk of splitToEvenChunks(megabatch, lengths, opts.worldSize)) out.push(...chunk);
  }
  return out;
}

/**
 * `get_modality_length_grouped_indices`: the order (indices into `samples`) in which to read one epoch.
 * Image and text-only samples are grouped separately into megabatches of worldSize × batchSize, the
 * megabatches shuffled together, and the two leftover megabatches joined last in index order.
 * `modalityLength` as `modalityLength()` gives it: never 0.
 */
export function groupByModalityLength(
  samples: readonly { id: string; modalityLength: number }[],
  opts: ModalityOrderOptions,
): number[] {
  for (const [name, v] of [
    ['batchSize', opts.batchSize],
    ['worldSize', opts.worldSize],
  ] as const)
    if (!Number.isInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  const zero = samples.findIndex((s) => s.modalityLength === 0 || !Number.isFinite(s.modalityLength));
  if (zero !== -1)
    throw new RangeError(
      `sample ${samples[zero].id}: modality length must be a non-zero number (a sample without words)`,
    );
  const lengths = samples.map((s) => s.modalityLength);
  const ids = samples.map((s) => s.id);
  if (lengths.every((l) => l > 0) || lengths.every((l) => l < 0))
    return lengthGroupedIndices(lengths, ids, opts);

  const image = samples.flatMap((s, i) => (s.modalityLength > 0 ? [i] : []));
  const text = samples.flatMap((s, i) => (s.modalityLength < 0 ? [i] : []));
  const grouped = (members: number[]) =>
    lengthGroupedIndices(
      members.map((i) => Math.abs(lengths[i])),
      members.map((i) => ids[i]),
      opts,
    ).map((local) => members[local]);
  const megabatchSize = opts.worldSize * opts.batchSize;
  const cut = (order: number[]) =>
    Array.from({ length: Math.ceil(order.length / megabatchSize) }, (_, m) =>
      order.slice(m * megabatchSize, (m + 1) * megabatchSize),
    );
  const imageMegabatches = cut(grouped(image));
  const textMegabatches = cut(grouped(text));
  const leftover = [...imageMegabatches.pop()!, ...textMegabatches.pop()!].sort((a, b) => a - b);
  const megabatches = [...imageMegabatches, ...textMegabatches];
  // A megabatch is named by its first sample's id, so its shuffle key does not depend on list positions.
  const shuffled = keyedPermutation(
    megabatches.map((m) => ids[m[0]]),
    opts.seed,
    MEGABATCH_SHUFFLE_PURPOSE,
    opts.epoch,
  ).map((i) => megabatches[i]);
  return [...shuffled.flat(), ...leftover];
}
