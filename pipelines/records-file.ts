// The build's intermediate record files: part files are a stream of frames [u32 header length][JSON header][image
// bytes...]; a part's rows file and the shuffle buckets are JSON lines of the same records with each image as its byte
// range in the part file. Internal to the build; the final shards are Parquet. Streams with bounded memory.
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
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

/** Where one image's bytes lie in its part file (`parts/part-N.rec`). */
export interface ImageRef {
  width: number;
  height: number;
  format: string;
  offset: number;
  length: number;
}

/**
 * A record without its image bytes: a line of a part's rows file (`parts/part-N.rows.jsonl`) and of a shuffle
 * bucket. Shuffle and route move these; write reads the images from the part file, so every image is copied once
 * after ingest, into its shard (docs/build.md).
 */
export interface RecordRef extends Omit<BuildRecord, 'images'> {
  images: ImageRef[];
}

/** The line of `frame` (encodeRecord(r), written at byte `start` of its part file) for the part's rows file. */
export function refLine(r: BuildRecord, start: number, frame: Buffer): string {
  let p = start + 4 + frame.readUInt32LE(0);
  const images = r.images.map((im) => {
    const ref = {
      width: im.width,
      height: im.height,
      format: im.format,
      offset: p,
      length: im.bytes.byteLength,
    };
    p += ref.length;
    return ref;
  });
  return `${JSON.stringify({ ...r, images })}\n`;
}

/** Every record of an in-memory slice of JSON lines (a bucket range). */
export function* decodeRefLines(buf: Uint8Array): Generator<RecordRef> {
  const text = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('utf8');
  let at = 0;
  while (at < text.length) {
    const nl = text.indexOf('\n', at);
    if (nl < 0) throw new Error(`a rows slice ends inside a line (${text.length - at} characters left)`);
    yield JSON.parse(text.slice(at, nl)) as RecordRef;
    at = nl + 1;
  }
}

/** Streams the records of a rows file (JSON lines), one chunk plus one line in memory. */
export async function* readRefLines(stream: Readable): AsyncGenerator<RecordRef> {
  const utf8 = new StringDecoder('utf8');
  let pending = '';
  for await (const chunk of stream) {
    // The decoder holds back a character split across chunks.
    pending += utf8.write(chunk as Buffer);
    let at = 0;
    for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n', at)) {
      yield JSON.parse(pending.slice(at, nl)) as RecordRef;
      at = nl + 1;
    }
    pending = pending.slice(at);
  }
  pending += utf8.end();
  if (pending.length) throw new Error(`rows file ends inside a line (${pending.length} characters left)`);
}
