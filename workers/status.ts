// Reads where a build stands from Redis alone: per step done / active / waiting / failed with failure reasons.
// Job ids are deterministic, so a build's jobs are found by id, without scanning queues shared by many builds.
import { Job, type JobState, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { LAST_STAGE, stageTotals } from '../pipelines/graph.ts';
import {
  type BuildRecord,
  buildRecordKey,
  bullJobId,
  type JobResult,
  jobResultSchema,
  queueName,
  readBuildRecord,
  STEPS,
  type Step,
} from './queues.ts';

export type JobStatus = JobState | 'missing';

export interface JobSnapshot {
  step: Step;
  n: number;
  id: string;
  state: JobStatus;
  /** Failed attempts so far (a job being retried has attemptsMade > 0 and a failedReason). */
  attemptsMade: number;
  failedReason?: string;
  result?: JobResult;
  /** When the last attempt started and when the job finished (ms since epoch), for stage timings. */
  processedOn?: number;
  finishedOn?: number;
  /** Records a running job reported so far (ingest), when it reported any. */
  progress?: number;
}

/** The step queues over one Redis client. */
export class BuildQueues {
  private readonly queues = new Map<Step, Queue>();

  constructor(readonly redis: Redis) {
    for (const step of STEPS) {
      const q = new Queue(queueName(step), { connection: redis });
      // Connection errors while Redis restarts are retried by ioredis; an 'error' event without a listener would
      // throw instead.
      q.on('error', () => undefined);
      this.queues.set(step, q);
    }
  }

  queue(step: Step): Queue {
    const q = this.queues.get(step);
    if (!q) throw new Error(`no queue for step ${step}`);
    return q;
  }

  all(): Queue[] {
    return [...this.queues.values()];
  }

  async job(buildId: string, step: Step, n: number): Promise<Job | undefined> {
    return Job.fromId(this.queue(step), bullJobId(buildId, step, n));
  }

  async snapshot(buildId: string, step: Step, n: number): Promise<JobSnapshot> {
    const id = bullJobId(buildId, step, n);
    // State first, then the hash: a job that completes in between then still shows its return value.
    const state = await this.queue(step).getJobState(id);
    const job = state === 'unknown' ? undefined : await this.job(buildId, step, n);
    if (!job) return { step, n, id, state: 'missing', attemptsMade: 0 };
    const snap: JobSnapshot = {
      step,
      n,
      id,
      state: state === 'unknown' ? 'missing' : state,
      attemptsMade: job.attemptsMade,
    };
    if (job.failedReason) snap.failedReason = job.failedReason;
    if (job.processedOn) snap.processedOn = job.processedOn;
    if (job.finishedOn) snap.finishedOn = job.finishedOn;
    if (typeof job.progress === 'number' && job.progress > 0) snap.progress = job.progress;
    if (state === 'completed') {
      const r = jobResultSchema.safeParse(job.returnvalue);
      if (r.success) snap.result = r.data;
    }
    return snap;
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((q) => q.close()));
  }
}

/** How many jobs each step has, as far as Redis knows (fan-outs are recorded as the heads that fix them finish). */
export function stepTotals(record: BuildRecord | undefined): Map<Step, number | undefined> {
  return stageTotals({ partitions: record?.partitions, bands: record?.bands, shards: record?.shards });
}

export interface StepStatus {
  step: Step;
  /** Undefined while the step's fan-out is not known yet. */
  total: number | undefined;
  counts: Record<JobStatus, number>;
  failures: { n: number; reason: string; attemptsMade: number; final: boolean }[];
}

export interface BuildStatus {
  buildId: string;
  out: string | undefined;
  state: 'unknown' | 'running' | 'done' | 'failed' | 'cancelled';
  steps: StepStatus[];
}

const emptyCounts = (): Record<JobStatus, number> => ({
  missing: 0,
  waiting: 0,
  'waiting-children': 0,
  prioritized: 0,
  delayed: 0,
  active: 0,
  completed: 0,
  failed: 0,
});

export async function snapshotAll(
  queues: BuildQueues,
  buildId: string,
  record: BuildRecord | undefined,
): Promise<JobSnapshot[]> {
  const wanted: { step: Step; n: number }[] = [];
  for (const [step, total] of stepTotals(record))
    for (let n = 0; n < (total ?? 0); n++) wanted.push({ step, n });
  return Promise.all(wanted.map((w) => queues.snapshot(buildId, w.step, w.n)));
}

export async function readBuildStatus(queues: BuildQueues, buildId: string): Promise<BuildStatus> {
  const record = await readBuildRecord(queues.redis, buildId);
  const totals = stepTotals(record);
  const snaps = await snapshotAll(queues, buildId, record);
  const steps: StepStatus[] = STEPS.map((step) => ({
    step,
    total: totals.get(step),
    counts: emptyCounts(),
    failures: [],
  }));
  for (const s of snaps) {
    const st = steps[STEPS.indexOf(s.step)];
    if (!st) continue;
    st.counts[s.state]++;
    if (s.failedReason && s.state !== 'completed') {
      st.failures.push({
        n: s.n,
        reason: s.failedReason,
        attemptsMade: s.attemptsMade,
        final: s.state === 'failed',
      });
    }
  }
  let state: BuildStatus['state'] = 'running';
  if (!record) state = 'unknown';
  else if (record.cancelled) state = 'cancelled';
  else if (snaps.some((s) => s.state === 'failed')) state = 'failed';
  else if (snaps.some((s) => s.step === LAST_STAGE && s.state === 'completed')) state = 'done';
  return { buildId, out: record?.out, state, steps };
}

/** A table for `mixforge status`. */
export function formatBuildStatus(s: BuildStatus): string {
  const lines = [`build ${s.buildId}: ${s.state}${s.out ? ` (${s.out})` : ''}`];
  lines.push(
    `  ${'step'.padEnd(9)} ${'total'.padStart(6)} ${'done'.padStart(6)} ${'active'.padStart(6)} ${'waiting'.padStart(7)} ${'failed'.padStart(6)}`,
  );
  for (const st of s.steps) {
    const c = st.counts;
    const waiting = c.waiting + c.prioritized + c.delayed + c['waiting-children'] + c.missing;
    lines.push(
      `  ${st.step.padEnd(9)} ${String(st.total ?? '?').padStart(6)} ${String(c.completed).padStart(6)} ${String(c.active).padStart(6)} ${String(st.total === undefined ? '?' : waiting).padStart(7)} ${String(c.failed).padStart(6)}`,
    );
  }
  for (const st of s.steps) {
    for (const f of st.failures) {
      lines.push(
        `  ${f.final ? 'failed' : 'retrying'}: ${st.step} ${f.n} after ${f.attemptsMade} attempt(s): ${f.reason}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

export interface BuildSummary {
  buildId: string;
  out: string | undefined;
  state: BuildStatus['state'];
  /** Jobs completed and jobs known so far (fan-outs appear as plan, near-dedup-plan and select finish). */
  done: number;
  known: number;
}

/** Every build this Redis has a record of (records are small hashes; SCAN keeps Redis responsive), sorted by id. */
export async function listBuilds(queues: BuildQueues): Promise<BuildSummary[]> {
  const ids: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await queues.redis.scan(cursor, 'MATCH', buildRecordKey('*'), 'COUNT', 500);
    cursor = next;
    for (const k of keys) ids.push(k.slice(buildRecordKey('').length));
  } while (cursor !== '0');
  ids.sort();
  const out: BuildSummary[] = [];
  for (const buildId of ids) {
    const s = await readBuildStatus(queues, buildId);
    if (s.state === 'unknown') continue;
    const done = s.steps.reduce((a, st) => a + st.counts.completed, 0);
    const known = s.steps.reduce((a, st) => a + (st.total ?? 0), 0);
    out.push({ buildId, out: s.out, state: s.state, done, known });
  }
  return out;
}

/** A table for `mixforge builds`. */
export function formatBuildList(builds: BuildSummary[]): string {
  if (builds.length === 0) return 'no builds in this Redis\n';
  const w = Math.max(5, ...builds.map((b) => b.buildId.length));
  const lines = [`${'build'.padEnd(w)}  ${'state'.padEnd(9)}  ${'jobs done'.padStart(11)}  out`];
  for (const b of builds)
    lines.push(
      `${b.buildId.padEnd(w)}  ${b.state.padEnd(9)}  ${`${b.done}/${b.known}`.padStart(11)}  ${b.out ?? ''}`,
    );
  return `${lines.join('\n')}\n`;
}
