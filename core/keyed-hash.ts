// Keyed 64-bit hashing: every random choice in mixforge is h(seed, purpose, sample id), never a stateful RNG,
// so results do not depend on partitioning, worker count, executor or retries (DESIGN.md, Determinism).
import { createHash } from 'node:crypto';

const TWO_POW_64 = 2 ** 64;

/** 64-bit keyed hash of (seed, purpose, id) as an unsigned bigint. SHA-256 truncated: stable across platforms. */
export function keyedHash64(seed: number | bigint | string, purpose: string, id: string): bigint {
  const h = createHash('sha256');
  h.update(`${String(seed)}\u0000${purpose}\u0000${id}`);
  return h.digest().readBigUInt64BE(0);
}

/** The hash as 16 lower-case hex digits: fixed width, so string order is numeric order. */
export function keyHex(key: bigint): string {
  return key.toString(16).padStart(16, '0');
}

/** The hash as 8 big-endian bytes (sortable bytewise in the same order as the bigint). */
export function keyBytes(key: bigint): Uint8Array {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(key);
  return new Uint8Array(b.buffer, b.byteOffset, 8);
}

/** A uniform float in [0, 1) from (seed, purpose, id), using the top 53 bits. */
export function keyedUniform(seed: number | bigint | string, purpose: string, id: string): number {
  return Number(keyedHash64(seed, purpose, id) >> 11n) / 2 ** 53;
}

/** A uniform index in [0, n) from (seed, purpose, id). Unbiased enough for n << 2^53. */
export function keyedChoice(seed: number | bigint | string, purpose: string, id: string, n: number): number {
  if (!Number.isInteger(n) || n <= 0)
    throw new RangeError(`keyedChoice needs a positive integer n, got ${n}`);
  return Math.floor(keyedUniform(seed, purpose, id) * n);
}

/** Which of `shards` key ranges a key falls in: floor(key / 2^64 * shards). */
export function shardOfKey(key: bigint, shards: number): number {
  return Number((key * BigInt(shards)) >> 64n);
}

export { TWO_POW_64 };
