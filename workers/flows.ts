// The build graph as BullMQ flows, added level by level because fan-outs are known only as the build runs:
// plan → {select ← ingest×P} → {route ← shuffle×P} → {finalize ← write×S}. Each level is added by the job before it.
import { type FlowJob, FlowProducer } from 'bullmq';
import type { Redis } from 'ioredis';
import { type JobPayload, jobOptions, queueName, type RetryPolicy, type Step } from './queues.ts';

/** The parent of each level that has children, and the step of its children. */
export const LEVELS = {
  select: 'ingest',
  route: 'shuffle',
  finalize: 'write',
} as const satisfies Record<string, Step>;
export type LevelParent = keyof typeof LEVELS;

export interface BuildRef {
  buildId: string;
  out: string;
  retry: RetryPolicy;
}

function node(ref: BuildRef, step: Step, n: number): FlowJob {
  const data: JobPayload = { out: ref.out, buildId: ref.buildId, step, n };
  return { name: step, queueName: queueName(step), data, opts: jobOptions(ref.buildId, step, n, ref.retry) };
}

/** The flow of one level: its parent and `fanOut` children, each of which fails the parent when it fails for good. */
export function levelFlow(ref: BuildRef, parent: LevelParent, fanOut: number): FlowJob {
  const childStep = LEVELS[parent];
  const children = Array.from({ length: fanOut }, (_, n) => {
    const c = node(ref, childStep, n);
    return { ...c, opts: { ...c.opts, failParentOnFailure: true } };
  });
  return { ...node(ref, parent, 0), children };
}

/**
 * Adds flows. Deterministic job ids make every add idempotent: an existing job is left as it is, and an existing
 * completed child counts as a processed dependency of a (re-)added parent, so re-adding a level is harmless.
 */
export class BuildFlows {
  private readonly producer: FlowProducer;

  constructor(connection: Redis) {
    this.producer = new FlowProducer({ connection });
    // Connection errors are retried by ioredis (see connectRedis); without a listener the event would throw.
    this.producer.on('error', () => undefined);
  }

  async addPlan(ref: BuildRef): Promise<void> {
    await this.producer.add(node(ref, 'plan', 0));
  }

  async addLevel(ref: BuildRef, parent: LevelParent, fanOut: number): Promise<void> {
    await this.producer.add(levelFlow(ref, parent, fanOut));
  }

  async close(): Promise<void> {
    await this.producer.close();
  }
}
