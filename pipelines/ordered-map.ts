// Concurrent map over an async iterable that yields results in input order, with at most `window` in flight.
// Lets ingest keep every image worker busy while the part file stays in source order (determinism).

export async function* orderedMap<T, R>(
  items: Iterable<T> | AsyncIterable<T>,
  window: number,
  fn: (item: T) => Promise<R>,
): AsyncGenerator<R> {
  const inflight: Promise<R>[] = [];
  for await (const item of items) {
    inflight.push(fn(item));
    // Prevent unhandled rejections while queued; the error is re-thrown when awaited in order.
    inflight[inflight.length - 1].catch(() => undefined);
    if (inflight.length >= window) yield await (inflight.shift() as Promise<R>);
  }
  while (inflight.length) yield await (inflight.shift() as Promise<R>);
}
