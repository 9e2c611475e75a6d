// The resumable state of a load-time mixture: plain, versioned JSON. Besides what a single-mixture state holds, it
// keeps the current segment (targets per stream) and each stream's count at the resume point: a few integers.
import { z } from 'zod';
import { MixforgeError } from '../../core/errors.ts';

export const MIX_STATE_KIND = 'mixforge.mix-state';
export const MIX_STATE_VERSION = 1;

const count = z.number().int().min(0);

export const MixStateSchema = z.strictObject({
  kind: z.literal(MIX_STATE_KIND),
  version: z.literal(MIX_STATE_VERSION),
  /** The streams in order: a state resumes only the same mixtures (layout = hash of their shards). */
  streams: z.array(
    z.strictObject({ name: z.string(), layout: z.string().regex(/^[0-9a-f]{16}$/), size: count }),
  ),
  seed: z.number().int(),
  epoch: count,
  lanes: z.number().int().min(1),
  shuffleWindow: z.number().int().min(1),
  remainder: z.enum(['pad', 'drop']),
  /** The segment in force: where it starts, each stream's count there, and each stream's target this epoch. */
  segment: z.strictObject({ start: count, base: z.array(count), counts: z.array(count) }),
  /** First mixed-epoch position not yet consumed (every rank), and each stream's items given before it. */
  position: count,
  streamCounts: z.array(count),
  total: count,
  worldSizeAtSave: z.number().int().min(1),
});

export type MixState = z.infer<typeof MixStateSchema>;

export class MixStateError extends MixforgeError {
  override name = 'MixStateError';
}

/** Parse a mix state from JSON text or an object; errors name the field and the file. */
export function parseMixState(input: unknown, file = 'mix state'): MixState {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (err) {
      throw new MixStateError(`${file}: not JSON (${(err as Error).message})`);
    }
  }
  const r = MixStateSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new MixStateError(`${file} at ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const s = r.data;
  const n = s.streams.length;
  if (s.segment.base.length !== n || s.segment.counts.length !== n || s.streamCounts.length !== n)
    throw new MixStateError(`${file}: segment and streamCounts must have one entry per stream (${n})`);
  if (s.position > s.total || s.position < s.segment.start)
    throw new MixStateError(`${file} at position: ${s.position} is outside [${s.segment.start}, ${s.total}]`);
  return s;
}
