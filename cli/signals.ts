// Shutdown signals for long-running commands, counted per request to stop. One Ctrl-C can arrive twice at once:
// from the terminal (to the whole foreground process group) and forwarded by the launcher (bin/mixforge.js);
// systemd and `kill -- -PGID` likewise signal both processes. Repeats within REPEAT_MS count as one.

const REPEAT_MS = 500;

/** Calls `onStop(signal, n)` for the n-th request to stop (SIGTERM or SIGINT), n = 1, 2, …; returns a remover. */
export function onStopSignals(onStop: (signal: NodeJS.Signals, n: number) => void): () => void {
  let n = 0;
  let last = Number.NEGATIVE_INFINITY;
  const handle = (signal: NodeJS.Signals) => {
    const now = performance.now();
    const repeat = now - last < REPEAT_MS;
    last = now;
    if (repeat) return;
    n++;
    onStop(signal, n);
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
  return () => {
    process.off('SIGTERM', handle);
    process.off('SIGINT', handle);
  };
}
