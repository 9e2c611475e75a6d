// For test helpers that register before/after hooks and hand back what the before hook sets up.

/** `value`, which a before() hook sets: throws if read earlier (e.g. at describe time instead of in a test). */
export function setUpInBefore<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} is only there once the before() hook has run`);
  return value;
}
