// Streams the lines of a JSON-lines file by byte range: plan() cuts at line starts (counting lines so origins
// carry `#line=`), read() yields the lines that start inside one range, reading past its end only to finish one.
import { SourceFileError } from '../core/errors.ts';
import { type ObjectInfo, storageFor } from '../core/storage/index.ts';
import { assertUnchanged, openOrFail, readRangeThenTail } from './byte-range.ts';

const NEWLINE = 0x0a;

/** Where one partition of a jsonl file starts: a line start and its 0-based line index. */
export interface LineCut {
  start: number;
  firstItem: number;
  /** Lines starting in this partition (blank ones included), when the file was scanned. */
  lines?: number;
}

/**
 * Cut a jsonl file into ranges of about `targetBytes` and at most `targetRecords` lines, starting at line starts. Every file is scanned once for
 * newlines (streamed, constant memory) so that each partition knows the number of its first line and its line
 * count (`mixforge plan` prints it).
 */
export async function planJsonl(
  file: ObjectInfo,
  targetBytes: number,
  targetRecords = Number.POSITIVE_INFINITY,
): Promise<LineCut[]> {
  const cuts: LineCut[] = [{ start: 0, firstItem: 0 }];
  let nextCut = targetBytes;
  let pos = 0;
  let lineIndex = 0;
  const stream = await openOrFail(file.uri, { start: 0, end: file.size });
  try {
    for await (const chunk of stream) {
      const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      for (let nl = buf.indexOf(NEWLINE); nl !== -1; nl = buf.indexOf(NEWLINE, nl + 1)) {
        lineIndex++;
        const lineStart = pos + nl + 1;
        const full = lineStart >= nextCut || lineIndex - (cuts.at(-1) as LineCut).firstItem >= targetRecords;
        if (full && lineStart < file.size) {
          cuts.push({ start: lineStart, firstItem: lineIndex });
          nextCut = lineStart + targetBytes;
        }
      }
      pos += chunk.byteLength;
    }
  } catch (err) {
    throw new SourceFileError(file.uri, `cannot read: ${(err as Error).message}`, { cause: err });
  }
  if (pos !== file.size)
    throw new SourceFileError(file.uri, `read ${pos} bytes but the file has ${file.size}`);
  // A last line without a trailing newline is a line too.
  const totalLines = lineIndex + (file.size > 0 && !(await endsWithNewline(file)) ? 1 : 0);
  for (let k = 0; k < cuts.length; k++) {
    cuts[k].lines = (k + 1 < cuts.length ? cuts[k + 1].firstItem : totalLines) - cuts[k].firstItem;
  }
  return cuts;
}

async function endsWithNewline(file: ObjectInfo): Promise<boolean> {
  const last = await storageFor(file.uri).readRange(file.uri, file.size - 1, file.size);
  return last[0] === NEWLINE;
}

/** One line of a jsonl file: 1-based line number, absolute byte offset, and text (no line terminator). */
export interface JsonlLine {
  line: number;
  start: number;
  text: string;
}

function decodeLine(parts: Uint8Array[], isFirstLineOfFile: boolean): string {
  const bytes = parts.length === 1 ? parts[0] : Buffer.concat(parts);
  let text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  if (isFirstLineOfFile && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return text.endsWith('\r') ? text.slice(0, -1) : text;
}

/**
 * The lines whose first byte lies in [start, end), blank lines included (callers skip them). `start` must be 0
 * or a line start found by planJsonl, with `firstItem` its 0-based line index.
 */
export async function* readJsonlLines(
  uri: string,
  range: { start: number; end: number; firstItem: number; fileSize: number },
): AsyncGenerator<JsonlLine> {
  await assertUnchanged(uri, range.fileSize);
  if (range.end <= range.start) return;
  if (range.start > 0) {
    const before = await storageFor(uri).readRange(uri, range.start - 1, range.start);
    if (before[0] !== NEWLINE) {
      throw new SourceFileError(
        uri,
        `partition start ${range.start} is not a line start (file changed since plan?)`,
      );
    }
  }
  let lineStart = range.start;
  let line = range.firstItem + 1;
  let pos = range.start;
  let parts: Uint8Array[] = [];
  for await (const chunk of readRangeThenTail(uri, range.start, range.end, range.fileSize)) {
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let from = 0;
    for (let nl = buf.indexOf(NEWLINE); nl !== -1; nl = buf.indexOf(NEWLINE, nl + 1)) {
      parts.push(chunk.subarray(from, nl));
      yield { line, start: lineStart, text: decodeLine(parts, lineStart === 0) };
      parts = [];
      line++;
      lineStart = pos + nl + 1;
      from = nl + 1;
      if (lineStart >= range.end) return;
    }
    // Copy the unfinished line: it must outlive this chunk.
    if (from < chunk.byteLength) parts.push(Buffer.from(chunk.subarray(from)));
    pos += chunk.byteLength;
  }
  if (parts.length > 0 && lineStart < range.end) {
    yield { line, start: lineStart, text: decodeLine(parts, lineStart === 0) };
  }
}
