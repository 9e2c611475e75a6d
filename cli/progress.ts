// Renders build events: live bars per stage on a terminal (cli-progress), plain log lines otherwise, or JSON lines.
import cliProgress from 'cli-progress';
import { type BuildEvent, type BuildEventSink, noticeLine } from '../pipelines/events.ts';

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
  if (!mode.tty) {
    const sink = (e: BuildEvent) => {
      const notice = noticeLine(e);
      if (notice) process.stderr.write(`${notice}\n`);
      else if (e.type === 'stage-done')
        process.stderr.write(`${e.stage}: ${e.total} jobs, ${e.rows} rows, ${e.seconds.toFixed(1)} s\n`);
      else if (e.type === 'build-done')
        process.stderr.write(`build: ${e.rows} rows in ${e.shards} shards, ${e.seconds.toFixed(1)} s\n`);
      else if (e.type === 'job-failed')
        process.stderr.write(`${e.stage} ${e.n} failed (attempt ${e.attempt}): ${e.error}\n`);
    };
    return { sink, stop: () => undefined };
  }
  const multi = new cliProgress.MultiBar(
    {
      format: ' {stage} |{bar}| {value}/{total} jobs | {rows} rows | {rate} rows/s | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: false,
      stream: process.stderr,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, { bar: cliProgress.SingleBar; rows: number; t0: number }>();
  const sink = (e: BuildEvent) => {
    const notice = noticeLine(e);
    if (notice) {
      // Before the first bar the multibar is not drawing, and its log buffer would wait for it.
      if (bars.size) multi.log(`${notice}\n`);
      else process.stderr.write(`${notice}\n`);
    } else if (e.type === 'stage-start') {
      bars.set(e.stage, {
        bar: multi.create(e.total, 0, { stage: e.stage.padEnd(8), rows: 0, rate: '0' }),
        rows: 0,
        t0: Date.now(),
      });
    } else if (e.type === 'job-done') {
      const b = bars.get(e.stage);
      if (!b) return;
      b.rows += e.rows;
      const rate = b.rows / Math.max(0.001, (Date.now() - b.t0) / 1000);
      b.bar.update(e.done, { rows: b.rows, rate: rate.toFixed(0) });
    } else if (e.type === 'build-done') {
      multi.stop();
      process.stderr.write(`build: ${e.rows} rows in ${e.shards} shards, ${e.seconds.toFixed(1)} s\n`);
    } else if (e.type === 'job-failed') {
      multi.log(`${e.stage} ${e.n} failed (attempt ${e.attempt}): ${e.error}\n`);
    }
  };
  return { sink, stop: () => multi.stop() };
}
