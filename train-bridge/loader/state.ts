// The loader's resumable state: a small, versioned, JSON-serialisable object. It names the epoch order (mixture
// layout, seed, lanes, window) and the global resume point; the world size at save is informational (elastic).
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { MixforgeError } from '../../core/errors.ts';

export const LOADER_STATE_KIND = 'mixforge.loader-state';
export const LOADER_STATE_VERSION = 1;

export const LoaderStateSchema = z.strictObject({
  kind: z.literal(LOADER_STATE_KIND),
  version: z.literal(LOADER_STATE_VERSION),
  /** Hash of the shards' paths, row counts and sha256: the state only resumes the mixture it was saved on. */
  layout: z.string().regex(/^[0-9a-f]{16}$/),
  seed: z.number().int(),
  epoch: z.number().int().min(0),
  lanes: z.number().int().min(1),
  shuffleWindow: z.number().int().min(1),
  remainder: z.enum(['pad', 'drop']),
  /** First epoch position not yet consumed by the job (every rank); equals `total` when the epoch is done. */
  position: z.number().int().min(0),
  total: z.number().int().min(0),
  worldSizeAtSave: z.number().int().min(1),
  /** Set when the order is LLaVA's group_by_modality_length (a state resumes only the same grouping). */
  grouping: z
    .strictObject({
      batchSize: z.number().int().min(1),
      worldSize: z.number().int().min(1),
      resolution: z.number().int().min(1),
    })
    .optional(),
});

export type LoaderState = z.infer<typeof LoaderStateSchema>;

export class LoaderStateError extends MixforgeError {
  override name = 'LoaderStateError';
}

/** Parse a state from JSON text or an object; errors name the field and the file. */
export function parseLoaderState(input: unknown, file = 'loader state'): LoaderState {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (err) {
      throw new LoaderStateError(`${file}: not JSON (${(err as Error).message})`);
    }
  }
  const r = LoaderStateSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new LoaderStateError(`${file} at ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  if (r.data.position > r.data.total)
    throw new LoaderStateError(
      `${file} at position: ${r.data.position} is past the epoch's ${r.data.total} samples`,
    );
  return r.data;
}

export function layoutHash(shards: readonly { path: string; rows: number; sha256: string }[]): string {
  const h = createHash('sha256');
  for (const s of shards) h.update(`${s.path}\u0000${s.rows}\u0000${s.sha256}\n`);
  return h.digest('hex').slice(0, 16);
}
