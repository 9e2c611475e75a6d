// Local-disk storage. Atomic writes go to a temp file in the same folder, then rename over the target.
import { createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StorageError } from '../errors.ts';
import { chunksByteLength, type ObjectInfo, type Storage, type WriteBody } from './types.ts';

let tempCounter = 0;

/** Chunks written in order by one writev (libuv repeats the call until every byte is written). */
async function writeAllChunks(fh: FileHandle, chunks: readonly Uint8Array[]): Promise<void> {
  const total = chunksByteLength(chunks);
  const { bytesWritten } = await fh.writev(chunks);
  if (bytesWritten !== total) throw new Error(`wrote ${bytesWritten} of ${total} bytes`);
}

export class LocalStorage implements Storage {
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const s = await stat(prefix).catch(() => undefined);
    if (!s) return;
    if (s.isFile()) {
      yield { uri: prefix, size: s.size, mtimeMs: Math.floor(s.mtimeMs) };
      return;
    }
    const entries = (await readdir(prefix, { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    );
    for (const e of entries) {
      const p = join(prefix, e.name);
      if (e.isDirectory()) yield* this.list(p);
      else if (e.isFile()) {
        const st = await stat(p);
        yield { uri: p, size: st.size, mtimeMs: Math.floor(st.mtimeMs) };
      }
    }
  }

  async stat(uri: string): Promise<ObjectInfo | undefined> {
    const s = await stat(uri).catch(() => undefined);
    if (!s?.isFile()) return undefined;
    return { uri, size: s.size, mtimeMs: Math.floor(s.mtimeMs) };
  }

  async readRange(uri: string, start: number, end: number, into?: Uint8Array): Promise<Uint8Array> {
    const fh = await open(uri, 'r').catch((err: unknown) => {
      throw new StorageError(uri, `cannot open: ${(err as Error).message}`, { cause: err });
    });
    try {
      const len = Math.max(0, end - start);
      const buf = into?.byteLength === len ? into : Buffer.allocUnsafe(len);
      let off = 0;
      while (off < len) {
        const { bytesRead } = await fh.read(buf, off, len - off, start + off);
        if (bytesRead === 0) break;
        off += bytesRead;
      }
      return off === len ? buf : buf.subarray(0, off);
    } finally {
      await fh.close();
    }
  }

  async readAll(uri: string): Promise<Uint8Array> {
    return readFile(uri).catch((err: unknown) => {
      throw new StorageError(uri, `cannot read: ${(err as Error).message}`, { cause: err });
    });
  }

  async createReadStream(uri: string, range?: { start: number; end: number }): Promise<Readable> {
    await stat(uri).catch((err: unknown) => {
      throw new StorageError(uri, `cannot open: ${(err as Error).message}`, { cause: err });
    });
    if (range && range.end <= range.start) return Readable.from([]);
    return createReadStream(uri, range ? { start: range.start, end: range.end - 1 } : {});
  }

  async writeAtomic(uri: string, body: WriteBody): Promise<ObjectInfo> {
    await mkdir(dirname(uri), { recursive: true });
    const tmp = `${uri}.tmp-${process.pid}-${tempCounter++}`;
    try {
      if (typeof body === 'string' || body instanceof Uint8Array || Array.isArray(body)) {
        const fh = await open(tmp, 'w');
        try {
          if (Array.isArray(body)) await writeAllChunks(fh, body);
          else await fh.writeFile(body);
          await fh.sync();
        } finally {
          await fh.close();
        }
      } else {
        // flush: fsync before close, as the buffer path does, so the rename never publishes a file still in cache.
        await pipeline(body, createWriteStream(tmp, { flush: true }));
      }
      await rename(tmp, uri);
    } catch (err) {
      await rm(tmp, { force: true });
      throw new StorageError(uri, `write failed: ${(err as Error).message}`, { cause: err });
    }
    const info = await this.stat(uri);
    if (!info) throw new StorageError(uri, 'written file vanished');
    return info;
  }

  async delete(uri: string): Promise<void> {
    await rm(uri, { force: true, recursive: true });
  }
}
