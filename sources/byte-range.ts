// Byte-range reading shared by the json array and jsonl readers: a partition reads its own range as one
// stream, then just enough of what follows to finish its last record; inputs must not change after plan.
import { SourceFileError } from '../core/errors.ts';
import { storageFor } from '../core/storage/index.ts';

/** Bytes read past a partition's end per request while finishing its last record. */
const TAIL_READ_BYTES = 1 << 20;

export async function openOrFail(
  uri: string,
  range: { start: number; end: number },
): Promise<AsyncIterable<Uint8Array>> {
  try {
    return (await storageFor(uri).createReadStream(uri, range)) as AsyncIterable<Uint8Array>;
  } catch (err) {
    throw new SourceFileError(uri, `cannot open: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Chunks of [start, end) as one stream, then — only while the consumer keeps pulling — ranged reads after
 * `end` up to `fileSize`, so a partition reads its own range plus the tail of its last record.
 */
export async function* readRangeThenTail(
  uri: string,
  start: number,
  end: number,
  fileSize: number,
): AsyncGenerator<Uint8Array> {
  if (end > start) {
    const stream = await openOrFail(uri, { start, end });
    try {
      for await (const chunk of stream) yield chunk;
    } catch (err) {
      if (err instanceof SourceFileError) throw err;
      throw new SourceFileError(uri, `cannot read: ${(err as Error).message}`, { cause: err });
    }
  }
  const storage = storageFor(uri);
  for (let pos = Math.max(start, end); pos < fileSize; pos += TAIL_READ_BYTES) {
    let bytes: Uint8Array;
    try {
      bytes = await storage.readRange(uri, pos, Math.min(fileSize, pos + TAIL_READ_BYTES));
    } catch (err) {
      throw new SourceFileError(uri, `cannot read: ${(err as Error).message}`, { cause: err });
    }
    yield bytes;
  }
}

/** The file must exist and have the size it had when planned (offsets in the plan would be wrong otherwise). */
export async function assertUnchanged(uri: string, fileSize: number): Promise<void> {
  const info = await storageFor(uri)
    .stat(uri)
    .catch((err: unknown) => {
      throw new SourceFileError(uri, `cannot stat: ${(err as Error).message}`, { cause: err });
    });
  if (!info) throw new SourceFileError(uri, 'no such file or object');
  if (info.size !== fileSize) {
    throw new SourceFileError(uri, `size is ${info.size} but was ${fileSize} when planned (file changed)`);
  }
}
