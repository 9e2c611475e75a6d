// The build graph (pipelines/graph.ts) as BullMQ flows, added level by level because fan-outs are known only as the
// build runs: plan → contamination-index → {near-dedup-plan ← ingest×P} → {near-dedup ← near-dedup-band×B} → select
// → {route ← shuffle×P} → {finalize ← write×S}. Each level is added by the head job of the level before it.
import { type FlowJob, FlowProducer } from 'bullmq';
import type { Redis } from 'ioredis';
import { LEVELS, type Stage } from '../pipelines/graph.ts';
import { type JobPayload, jobOptions, queueName, type RetryPolicy, type Step } from './queues.ts';

export interface BuildRef {
  buildId: string;
  out: string;
  retry: RetryPolicy;
}

function node(ref: BuildRef, step: Step, n: number): FlowJob {
  const data: JobPayload = { out: ref.out, buildId: ref.buildId, step, n };
  return { name: step, queueName: queueName(step), data, opts: jobOptions(ref.buildId, step, n, ref.retry) };
}

/**
 * The flow of the level headed by `head`: the head job and `fanOut` jobs of its child stage, each of which fails the
 * head when it fails for good. A level without children (plan) is its head alone.
 */
export function levelFlow(ref: BuildRef, head: Stage, fanOut: number): FlowJob {
  const level = LEVELS.find((l) => l.head === head);
  if (!level) throw new Error(`${head} heads no level of the build graph`);
  const children = level.children.flatMap((childStep) =>
    Array.from({ length: fanOut }, (_, n) => {
      const c = node(ref, childStep, n);
      return { ...c, opts: { ...c.opts, failParentOnFailure: true } };
    }),
  );
  return children.length ? { ...node(ref, head, 0), children } : node(ref, head, 0);
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

  /** The level headed by `head`, with `fanOut` children (ignored for a level without children). */
  async addLevel(ref: BuildRef, head: Stage, fanOut: number): Promise<void> {
    await this.producer.add(levelFlow(ref, head, fanOut));
  }

  async close(): Promise<void> {
    await this.producer.close();
  }
}
