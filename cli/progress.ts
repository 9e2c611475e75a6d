// Renders build events: live bars per stage on a terminal (cli-progress), plain log lines otherwise (a progress line
// every few seconds while a stage runs, so a log shows the build moving), or JSON lines.
import cliProgress from 'cli-progress';
import { type BuildEvent, type BuildEventSink, noticeLine } from '../pipelines/events.ts';
import type { Stage } from '../pipelines/graph.ts';

/** Seconds between two progress lines when stderr is not a terminal (MIXFORGE_PROGRESS_SECONDS overrides). */
export const DEFAULT_PROGRESS_SECONDS = 5;

/** Rows of a stage: those of finished jobs plus what running jobs reported so far. */
class StageRows {
  private finished = 0;
  private readonly running = new Map<number, number>();
  done = 0;
  readonly t0 = Date.now();
  constructor(
    readonly stage: Stage,
    readonly total: number,
  ) {}
  progress(n: number, rows: number): void {
    this.running.set(n, rows);
  }
  jobDone(n: number, rows: number, done: number): void {
    this.running.delete(n);
    this.finished += rows;
    this.done = done;
  }
  get rows(): number {
    let r = this.finished;
    for (const v of this.running.values()) r += v;
    return r;
  }
  get rate(): number {
    return this.rows / Math.max(0.001, (Date.now() - this.t0) / 1000);
  }
}

function intervalSeconds(): number {
  const v = Number(process.env.MIXFORGE_PROGRESS_SECONDS);
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_PROGRESS_SECONDS;
}

export function progressSink(mode: { json: boolean; tty: boolean }): {
  sink: BuildEventSink;
  stop: () => void;
} {
  if (mode.json) {
    return {
      sink: (e) => process.stdout.write(`${JSON.stringify({ ...e, t: Date.now() })}\n`),
      stop: () => undefined,
    };
  }
  if (!mode.tty) return logSink(intervalSeconds());
  const multi = new cliProgress.MultiBar(
    {
      format: ' {stage} |{bar}| {value}/{total} jobs | {rows} rows | {rate} rows/s | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: false,
      stream: process.stderr,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, { bar: cliProgress.SingleBar; rows: StageRows }>();
  const sink = (e: BuildEvent) => {
    const notice = noticeLine(e);
    if (notice) {
      // Before the first bar the multibar is not drawing, and its log buffer would wait for it.
      if (bars.size) multi.log(`${notice}\n`);
      else process.stderr.write(`${notice}\n`);
    } else if (e.type === 'stage-start') {
      bars.set(e.stage, {
        bar: multi.create(e.total, 0, { stage: e.stage.padEnd(8), rows: 0, rate: '0' }),
        rows: new StageRows(e.stage, e.total),
      });
    } else if (e.type === 'job-progress' || e.type === 'job-done') {
      const b = bars.get(e.stage);
      if (!b) return;
      if (e.type === 'job-progress') b.rows.progress(e.n, e.rows);
      else b.rows.jobDone(e.n, e.rows, e.done);
      b.bar.update(b.rows.done, { rows: b.rows.rows, rate: b.rows.rate.toFixed(0) });
    } else if (e.type === 'build-done') {
      multi.stop();
      process.stderr.write(`build: ${e.rows} rows in ${e.shards} shards, ${e.seconds.toFixed(1)} s\n`);
    } else if (e.type === 'job-failed') {
      multi.log(`${e.stage} ${e.n} failed (attempt ${e.attempt}): ${e.error}\n`);
    }
  };
  return { sink, stop: () => multi.stop() };
}

/** Plain lines for logs: one per finished stage, and every `seconds` one for the running stage. */
function logSink(seconds: number): { sink: BuildEventSink; stop: () => void } {
  let current: StageRows | undefined;
  const line = (s: StageRows) =>
    `${s.stage}: ${s.done}/${s.total} jobs, ${s.rows} rows, ${s.rate.toFixed(0)} rows/s, ` +
    `${((Date.now() - s.t0) / 1000).toFixed(0)} s\n`;
  const timer = setInterval(() => {
    if (current) process.stderr.write(line(current));
  }, seconds * 1000);
  timer.unref();
  const stop = () => clearInterval(timer);
  const sink = (e: BuildEvent) => {
    const notice = noticeLine(e);
    if (notice) process.stderr.write(`${notice}\n`);
    else if (e.type === 'stage-start') current = new StageRows(e.stage, e.total);
    else if (e.type === 'job-progress' && current?.stage === e.stage) current.progress(e.n, e.rows);
    else if (e.type === 'job-done' && current?.stage === e.stage) current.jobDone(e.n, e.rows, e.done);
    else if (e.type === 'stage-done') {
      current = undefined;
      process.stderr.write(`${e.stage}: ${e.total} jobs, ${e.rows} rows, ${e.seconds.toFixed(1)} s\n`);
    } else if (e.type === 'build-done') {
      stop();
      process.stderr.write(`build: ${e.rows} rows in ${e.shards} shards, ${e.seconds.toFixed(1)} s\n`);
    } else if (e.type === 'job-failed')
      process.stderr.write(`${e.stage} ${e.n} failed (attempt ${e.attempt}): ${e.error}\n`);
  };
  return { sink, stop };
}
