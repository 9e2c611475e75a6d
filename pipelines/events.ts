// Build progress events, emitted by both executors and rendered by the CLI (bars, log lines or --json).
import type { Stage } from './graph.ts';

export type BuildEvent =
  | { type: 'stage-start'; stage: Stage; total: number }
  | { type: 'job-done'; stage: Stage; n: number; ran: boolean; done: number; total: number; rows: number }
  | { type: 'stage-done'; stage: Stage; total: number; rows: number; seconds: number }
  | { type: 'build-done'; rows: number; shards: number; seconds: number }
  | { type: 'job-failed'; stage: Stage; n: number; error: string; attempt: number };

export type BuildEventSink = (e: BuildEvent) => void;
