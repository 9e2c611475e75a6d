// The keys file ingest writes beside each part file: one tab-separated line per kept record, in part order (take
// key, content key, encoded bytes, near-duplicate fields, id). select and near-dedup decide from these alone,
// without opening the parts.
import { storageFor } from '../core/storage/index.ts';

export interface KeyRow {
  /** Hex of h(seed, "take:"+component, id): the take order. */
  takeKey: string;
  /** Hex of the exact-duplicate key (content hash). */
  dedupKey: string;
  /** Encoded size of the record (images included), for `output.max_shard_bytes`. */
  bytes: number;
  /** With `near_dedup` in the spec: what near-duplicate detection needs (JSON on the line, `-` when absent). */
  near?: NearKeys;
  /** Last on the line: the only field that may hold a tab. */
  id: string;
}

/** A kept sample's near-duplicate fields, and where it came from (for its quarantine record if dropped). */
export interface NearKeys {
  /** Perceptual hash (16 hex digits) per image, in order. */
  images: string[];
  /** Base64 of the 128-byte MinHash signature of the text. */
  text: string;
  /** Digest of the exact conversation (equal: the samples differ in their images only). */
  textDigest: string;
  source: string;
  origin: string;
}

export function encodeKeyRows(rows: readonly KeyRow[]): string {
  return rows
    .map(
      (k) => `${k.takeKey}\t${k.dedupKey}\t${k.bytes}\t${k.near ? JSON.stringify(k.near) : '-'}\t${k.id}\n`,
    )
    .join('');
}

export function decodeKeyRows(text: string): KeyRow[] {
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const [takeKey, dedupKey, bytes, near, ...rest] = l.split('\t');
      const row: KeyRow = { takeKey, dedupKey, bytes: Number(bytes), id: rest.join('\t') };
      if (near !== '-') row.near = JSON.parse(near) as NearKeys;
      return row;
    });
}

export async function readKeysFile(uri: string): Promise<KeyRow[]> {
  return decodeKeyRows(Buffer.from(await storageFor(uri).readAll(uri)).toString('utf8'));
}
