// Every Redis connection mixforge makes: the URL from --redis or the environment, a first connect bounded in time,
// and one sentence naming the URL when Redis cannot be reached, so no fleet command ever hangs silently.
import { Redis } from 'ioredis';
import { errorMessage, MixforgeError } from '../core/errors.ts';

/** How long a command waits for Redis to answer its first connect (and, for one-shot commands, each request). */
export const DEFAULT_REDIS_TIMEOUT_MS = 10_000;

/** Where the fleet commands look for the Redis URL when `--redis` is not given, in this order. */
export const REDIS_URL_ENV = ['MIXFORGE_REDIS', 'REDIS_URL'] as const;

/** Seconds for `--redis-timeout` when the flag is absent. */
export const REDIS_TIMEOUT_ENV = 'MIXFORGE_REDIS_TIMEOUT';

export class RedisUrlError extends MixforgeError {
  override name = 'RedisUrlError';
}

export class RedisUnreachableError extends MixforgeError {
  override name = 'RedisUnreachableError';
}

/** The URL with any password replaced, for messages and logs. */
export function redactRedisUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/[^:@/]*:)[^@/]*@/, '$1***@');
}

/** `--redis` if given, else MIXFORGE_REDIS, else REDIS_URL; a clear error when none is set. */
export function redisUrlFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const url = flag ?? REDIS_URL_ENV.map((k) => env[k]).find((v) => v !== undefined && v !== '');
  if (!url)
    throw new RedisUrlError(
      `no Redis given: pass --redis redis://host:port or set ${REDIS_URL_ENV.join(' or ')}`,
    );
  if (!/^rediss?:\/\//.test(url))
    throw new RedisUrlError(
      `Redis URL ${redactRedisUrl(url)}: expected redis://host:port[/db] or rediss://…`,
    );
  return url;
}

/** `--redis-timeout <s>` if given, else MIXFORGE_REDIS_TIMEOUT, else 10 s; in ms. */
export function redisTimeoutFrom(
  flagSeconds: number | undefined,
  env: NodeJS.ProcessEnv = process.env,
): number {
  const raw = flagSeconds ?? (env[REDIS_TIMEOUT_ENV] ? Number(env[REDIS_TIMEOUT_ENV]) : undefined);
  if (raw === undefined) return DEFAULT_REDIS_TIMEOUT_MS;
  if (!Number.isFinite(raw) || raw <= 0)
    throw new RedisUrlError(`${REDIS_TIMEOUT_ENV}: expected a positive number of seconds, got ${raw}`);
  return Math.round(raw * 1000);
}

export interface RedisConnectOptions {
  /** The first connect must succeed within this time (ms). */
  timeoutMs?: number;
  /**
   * Short-lived commands (status, cancel, retry-failed, builds): every request also fails after `timeoutMs` when
   * Redis stops answering. Long-lived ones (worker, follower, dashboard) instead wait through a Redis restart.
   * Never for a BullMQ Worker: its blocking fetch legitimately waits longer than any timeout.
   */
  oneShot?: boolean;
}

/** Reconnect delays while Redis is away: 100 ms growing to at most 2 s (ioredis's default grows to 2 s too). */
const reconnectDelay = (attempt: number) => Math.min(100 * attempt, 2000);

/**
 * A connected ioredis client, or a RedisUnreachableError naming the URL once `timeoutMs` passed without a
 * connection. `maxRetriesPerRequest: null` is what BullMQ needs: commands wait through a Redis restart instead of
 * failing after a fixed number of reconnects (one-shot clients bound each command with `commandTimeout` instead).
 */
export async function openRedis(url: string, opts: RedisConnectOptions = {}): Promise<Redis> {
  redisUrlFrom(url);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS;
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: null,
    retryStrategy: reconnectDelay,
    ...(opts.oneShot ? { commandTimeout: timeoutMs } : {}),
  });
  let lastError = '';
  // Connection errors are retried by ioredis; without a listener Node would print each one as unhandled.
  client.on('error', (err: unknown) => {
    lastError = errorMessage(err);
  });
  let timer: NodeJS.Timeout | undefined;
  const ready = new Promise<void>((resolve) => client.once('ready', () => resolve()));
  // Rejects on the first failed attempt while ioredis keeps retrying: only 'ready' or the timeout decide.
  client.connect().catch(() => undefined);
  try {
    await Promise.race([
      ready,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new RedisUnreachableError(
                `cannot reach Redis at ${redactRedisUrl(url)} within ${timeoutMs / 1000} s` +
                  `${lastError ? ` (${lastError})` : ''}; check the URL (--redis, ${REDIS_URL_ENV.join(', ')}) and that Redis is running`,
              ),
            ),
          timeoutMs,
        );
      }),
    ]);
  } catch (err) {
    client.disconnect();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return client;
}

/**
 * Says when a connected client has lost Redis for `timeoutMs` (once per outage), and when Redis is back. For the
 * long-lived commands that wait through a Redis restart: waiting is right, waiting silently is not. Returns a remover.
 */
export function reportRedisOutages(
  client: Redis,
  url: string,
  timeoutMs: number,
  say: (message: string) => void,
): () => void {
  let timer: NodeJS.Timeout | undefined;
  let reported = false;
  const onLost = () => {
    if (timer || reported) return;
    timer = setTimeout(() => {
      reported = true;
      say(
        `Redis at ${redactRedisUrl(url)} does not answer for ${timeoutMs / 1000} s; waiting for it to come back`,
      );
    }, timeoutMs);
  };
  const onReady = () => {
    clearTimeout(timer);
    timer = undefined;
    if (reported) say(`Redis at ${redactRedisUrl(url)} answers again`);
    reported = false;
  };
  client.on('close', onLost);
  client.on('ready', onReady);
  return () => {
    clearTimeout(timer);
    client.off('close', onLost);
    client.off('ready', onReady);
  };
}
