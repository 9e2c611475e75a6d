// Build progress events, emitted by both executors and rendered by the CLI (bars, log lines or --json).
import type { Stage } from './graph.ts';

export type BuildEvent =
  | { type: 'stage-start'; stage: Stage; total: number }
  | { type: 'job-done'; stage: Stage; n: number; ran: boolean; done: number; total: number; rows: number }
  /** A running job's records so far (ingest reports every PROGRESS_EVERY records), so progress moves within a job. */
  | { type: 'job-progress'; stage: Stage; n: number; rows: number }
  | { type: 'stage-done'; stage: Stage; total: number; rows: number; seconds: number }
  | { type: 'build-done'; rows: number; shards: number; seconds: number }
  | { type: 'job-failed'; stage: Stage; n: number; error: string; attempt: number }
  /** A rerun found finished jobs of this build: `total` counts the jobs known so far (all, when `totalKnown`). */
  | { type: 'resume'; done: number; total: number; totalKnown: boolean }
  /** Something the user should know that does not stop the build (a take larger than its component). */
  | { type: 'warning'; message: string };

export type BuildEventSink = (e: BuildEvent) => void;

/** The line a terminal or log shows for the events that are messages rather than progress. */
export function noticeLine(e: BuildEvent): string | undefined {
  if (e.type === 'resume') return `resuming: ${e.done} of ${e.total}${e.totalKnown ? '' : '+'} jobs done`;
  if (e.type === 'warning') return `warning: ${e.message}`;
  return undefined;
}
