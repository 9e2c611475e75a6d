// Retries with exponential backoff and jitter for transient storage failures (throttling, 5xx, resets).

export interface RetryOptions {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryOptions = { attempts: 5, baseDelayMs: 100, maxDelayMs: 5000 };

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ECONNREFUSED',
  'EAI_AGAIN',
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'InternalError',
  'ServiceUnavailable',
]);

/** True for errors worth retrying: network resets, throttling, HTTP 429/5xx. */
export function isTransientError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as {
    code?: string;
    name?: string;
    $metadata?: { httpStatusCode?: number };
    $retryable?: unknown;
  };
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && (status === 429 || status >= 500)) return true;
  if (e.$retryable) return true;
  return TRANSIENT_CODES.has(e.code ?? '') || TRANSIENT_CODES.has(e.name ?? '');
}

export async function withRetry<T>(
  what: string,
  fn: () => Promise<T>,
  opts: RetryOptions = DEFAULT_RETRY,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<T> {
  let lastErr: unknown;
  for (let attempt = 0; attempt < opts.attempts; attempt++) {
    try {
      return await fn();
    } catch (err) {
      lastErr = err;
      if (!isTransientError(err) || attempt === opts.attempts - 1) break;
      const delay = Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** attempt) * (0.5 + Math.random() / 2);
      await sleep(delay);
    }
  }
  const msg = lastErr instanceof Error ? lastErr.message : String(lastErr);
  throw Object.assign(new Error(`${what} failed: ${msg}`, { cause: lastErr }), {
    transient: isTransientError(lastErr),
  });
}
