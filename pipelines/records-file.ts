// The build's intermediate record files: a stream of frames [u32 header length][JSON header][image bytes...].
// Internal to the build (parts and shuffle buckets); the final shards are Parquet. Streams with bounded memory.
import type { Readable } from 'node:stream';
import type { Turn } from '../core/schema.ts';

/** A processed sample plus what select and shuffle need. Images carry their bytes. */
export interface BuildRecord {
  id: string;
  source: string;
  component: string;
  origin: string;
  conversations: Turn[];
  images: { bytes: Uint8Array; width: number; height: number; format: string }[];
  /** The sample's metadata column (canonical JSON). */
  metadata: string;
  /** Hex of the exact-duplicate key (content hash). */
  dedupKey: string;
  /** Hex of h(seed, "take:"+component, id): the take order. */
  takeKey: string;
  /** Order key of the emitted sample (set by shuffle; includes repeat suffix). */
  key?: string;
}

interface FrameHeader extends Omit<BuildRecord, 'images'> {
  images: { width: number; height: number; format: string; length: number }[];
}

export function encodeRecord(r: BuildRecord): Buffer {
  const header: FrameHeader = {
    ...r,
    images: r.images.map((im) => ({
      width: im.width,
      height: im.height,
      format: im.format,
      length: im.bytes.byteLength,
    })),
  };
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  return Buffer.concat([len, json, ...r.images.map((im) => im.bytes)]);
}

/** Decodes every record of an in-memory buffer (a bucket slice). */
export function* decodeRecords(buf: Uint8Array): Generator<BuildRecord> {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off < b.length) {
    const { record, next } = decodeAt(b, off);
    yield record;
    off = next;
  }
}

function decodeAt(b: Buffer, off: number): { record: BuildRecord; next: number } | never {
  const hlen = b.readUInt32LE(off);
  const header = JSON.parse(b.subarray(off + 4, off + 4 + hlen).toString('utf8')) as FrameHeader;
  let p = off + 4 + hlen;
  const images = header.images.map((im) => {
    const bytes = new Uint8Array(b.subarray(p, p + im.length));
    p += im.length;
    return { bytes, width: im.width, height: im.height, format: im.format };
  });
  return { record: { ...header, images }, next: p };
}

/** Frame length at `off` if the whole frame is in `b`, else -1. */
function frameLength(b: Buffer, off: number): number {
  if (b.length - off < 4) return -1;
  const hlen = b.readUInt32LE(off);
  if (b.length - off < 4 + hlen) return -1;
  const header = JSON.parse(b.subarray(off + 4, off + 4 + hlen).toString('utf8')) as FrameHeader;
  const total = 4 + hlen + header.images.reduce((s, im) => s + im.length, 0);
  return b.length - off < total ? -1 : total;
}

/** Streams records from a byte stream, holding at most one frame plus one chunk in memory. */
export async function* readRecordStream(stream: Readable): AsyncGenerator<BuildRecord> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of stream) {
    pending = pending.length ? Buffer.concat([pending, chunk as Buffer]) : (chunk as Buffer);
    let off = 0;
    for (;;) {
      const n = frameLength(pending, off);
      if (n < 0) break;
      yield decodeAt(pending, off).record;
      off += n;
    }
    pending = pending.subarray(off);
  }
  if (pending.length) throw new Error(`record stream ends inside a frame (${pending.length} bytes left)`);
}
