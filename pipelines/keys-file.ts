// The keys file ingest writes beside each part file: one tab-separated line per kept record, in part order (take
// key, content key, encoded bytes, id). select decides dedup and take from these alone, without opening the parts.
import { storageFor } from '../core/storage/index.ts';

export interface KeyRow {
  /** Hex of h(seed, "take:"+component, id): the take order. */
  takeKey: string;
  /** Hex of the exact-duplicate key (content hash). */
  dedupKey: string;
  /** Encoded size of the record (images included), for `output.max_shard_bytes`. */
  bytes: number;
  /** Last on the line: the only field that may hold a tab. */
  id: string;
}

export function encodeKeyRows(rows: readonly KeyRow[]): string {
  return rows.map((k) => `${k.takeKey}\t${k.dedupKey}\t${k.bytes}\t${k.id}\n`).join('');
}

export function decodeKeyRows(text: string): KeyRow[] {
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const [takeKey, dedupKey, bytes, ...rest] = l.split('\t');
      return { takeKey, dedupKey, bytes: Number(bytes), id: rest.join('\t') };
    });
}

export async function readKeysFile(uri: string): Promise<KeyRow[]> {
  return decodeKeyRows(Buffer.from(await storageFor(uri).readAll(uri)).toString('utf8'));
}
