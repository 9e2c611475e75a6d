// Error classes per failure family. Each carries the context a user needs to find the problem.

export class MixforgeError extends Error {
  override name = 'MixforgeError';
}

/** A file (not one record) cannot be read: wrong format, missing required column, I/O failure. */
export class SourceFileError extends MixforgeError {
  override name = 'SourceFileError';
  constructor(
    readonly uri: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${uri}: ${message}`, options);
  }
}

/** A mixture spec or CLI input is invalid. `path` is the field path (e.g. `components[2].take.count`). */
export class SpecError extends MixforgeError {
  override name = 'SpecError';
  constructor(
    readonly file: string,
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}${path ? ` at ${path}` : ''}: ${message}`, options);
  }
}

/** A storage operation failed after retries, or failed with a non-retryable error. */
export class StorageError extends MixforgeError {
  override name = 'StorageError';
  constructor(
    readonly uri: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${uri}: ${message}`, options);
  }
}

/** Bytes read from a built shard do not match the manifest's hash: never used, never cached. */
export class CorruptShardError extends MixforgeError {
  override name = 'CorruptShardError';
  constructor(
    readonly uri: string,
    message: string,
  ) {
    super(`${uri}: ${message}`);
  }
}

/** Deterministic bad input: retrying cannot help (the BullMQ executor maps it to UnrecoverableError). */
export class DeterministicInputError extends MixforgeError {
  override name = 'DeterministicInputError';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
