// The build graph's names on BullMQ: one queue per step, deterministic job ids, the small job payload, job options
// (retries, backoff, retention) and the per-build record. Redis carries only these ids, payloads and small results.
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { STAGES, type Stage } from '../pipelines/graph.ts';

/**
 * The steps that run as BullMQ jobs: the build graph's stages (pipelines/graph.ts), one queue each. `route` is also
 * the barrier between shuffle and write: it runs once every shuffle job is done and adds the write jobs.
 */
export const STEPS = STAGES;
export type Step = Stage;

export function queueName(step: Step): string {
  return `mixforge-${step}`;
}

/**
 * `<buildId>.<step>.<n>`. BullMQ rejects `:` in custom ids (it is its key separator). Build ids are `[a-z0-9_-]`
 * (spec names) plus a hex hash, so the dots are unambiguous.
 */
export function bullJobId(buildId: string, step: Step, n: number): string {
  return `${buildId}.${step}.${n}`;
}

export const jobPayloadSchema = z.object({
  out: z.string().min(1),
  buildId: z.string().regex(/^[a-z0-9_-]+$/, 'expected a build id'),
  step: z.enum(STEPS),
  n: z.number().int().nonnegative(),
});
export type JobPayload = z.infer<typeof jobPayloadSchema>;

/** What a job leaves in Redis when it completes: counts for progress, never sample data. */
export const jobResultSchema = z.object({
  step: z.enum(STEPS),
  n: z.number().int(),
  /** False when the job's outputs were already committed (a rerun after a crash, a resubmitted build). */
  ran: z.boolean(),
  rows: z.number(),
  /** plan: partitions; near-dedup-plan: bands; select: shards; other steps leave it out. */
  fanOut: z.number().int().nonnegative().optional(),
});
export type JobResult = z.infer<typeof jobResultSchema>;

export interface RetryPolicy {
  /** Tries per job, the first included. Deterministic errors never retry. */
  attempts: number;
  /** First retry delay in ms; doubles each retry (BullMQ exponential backoff). */
  backoffMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, backoffMs: 2000 };

/** Finished jobs stay in Redis long enough to make resubmission idempotent and `status` useful, then age out. */
export const KEEP_COMPLETED_S = 7 * 24 * 3600;
export const KEEP_FAILED_S = 30 * 24 * 3600;

export function jobOptions(buildId: string, step: Step, n: number, retry: RetryPolicy) {
  return { jobId: bullJobId(buildId, step, n), ...retryOptions(retry) };
}

/** Retries, backoff and retention of every job mixforge adds (build steps and tasks alike). */
export function retryOptions(retry: RetryPolicy) {
  return {
    attempts: retry.attempts,
    backoff: { type: 'exponential' as const, delay: retry.backoffMs },
    removeOnComplete: { age: KEEP_COMPLETED_S },
    removeOnFail: { age: KEEP_FAILED_S },
  };
}

/** A small hash per build: the output URI (so `status`/`cancel` need only the id), fan-outs, the cancel flag. */
export function buildRecordKey(buildId: string): string {
  return `mixforge:build:${buildId}`;
}

export interface BuildRecord {
  out: string;
  retry: RetryPolicy;
  partitions?: number;
  bands?: number;
  shards?: number;
  cancelled: boolean;
}

export async function readBuildRecord(redis: Redis, buildId: string): Promise<BuildRecord | undefined> {
  const h = await redis.hgetall(buildRecordKey(buildId));
  if (!h.out) return undefined;
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  return {
    out: h.out,
    retry: {
      attempts: num(h.attempts) ?? DEFAULT_RETRY.attempts,
      backoffMs: num(h.backoffMs) ?? DEFAULT_RETRY.backoffMs,
    },
    partitions: num(h.partitions),
    bands: num(h.bands),
    shards: num(h.shards),
    cancelled: h.cancelled === '1',
  };
}
