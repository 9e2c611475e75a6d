// Awaiting dawn.node's promises without its busy poll taking a core from a CPU adapter's own threads.
// While any promise of dawn.node is pending it ticks the device from setImmediate on every turn of the event
// loop, which keeps the main thread at 100 %; on a CPU adapter (lavapipe) that is a core the device's work needs.

/** The longest a turn of the event loop sleeps while the engine waits: the latest a finished wait is noticed. */
const NAP_MS = 0.5;
const napCell = new Int32Array(new SharedArrayBuffer(4));
let waiters = 0;
let napping = false;

function nap(): void {
  if (waiters === 0) {
    napping = false;
    return;
  }
  // Blocks this thread only; I/O and timers still run between naps, and dawn's tick runs once per turn.
  Atomics.wait(napCell, 0, 0, NAP_MS);
  setImmediate(nap);
}

/** `pending`, awaited with the main thread asleep most of the time (one nap loop however many waiters). */
export async function awaitSleeping<T>(pending: Promise<T>): Promise<T> {
  waiters++;
  if (!napping) {
    napping = true;
    setImmediate(nap);
  }
  try {
    return await pending;
  } finally {
    waiters--;
  }
}
