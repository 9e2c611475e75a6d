// Streams the elements of one huge top-level JSON array without loading the file: a byte-level scanner finds
// element boundaries (depth, strings, escapes), plan() records them at partition cuts, read() parses one range.
import { SourceFileError } from '../core/errors.ts';
import type { ObjectInfo } from '../core/storage/index.ts';
import { assertUnchanged, openOrFail, readRangeThenTail } from './byte-range.ts';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

function isJsonWhitespace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/** One element of the top-level array: its item index, absolute byte offset of its first byte, and bytes. */
export interface ArrayElement {
  index: number;
  start: number;
  bytes: Uint8Array;
}

type ScanState = 'before-array' | 'before-element' | 'in-element' | 'after-element' | 'after-array';

export interface ScannerOptions {
  /** Absolute offset of the first byte that will be pushed. */
  offset: number;
  /** Item index of the first element that starts at or after `offset`. */
  firstIndex: number;
  /** True when `offset` is the start of the file (expect `[`), false when it is an element's first byte. */
  atFileStart: boolean;
  /** Keep element bytes (read) or only track boundaries (plan). */
  collect: boolean;
  /** Stop (done) before an element that would start at or after this offset. */
  stopAt?: number;
  /** Called at each element's first byte (plan uses it to record partition boundaries). */
  onElementStart?: (offset: number, index: number) => void;
}

/**
 * A push scanner over the bytes of a JSON array. It validates structure only (brackets, strings, separators);
 * each element's own syntax is left to JSON.parse so that one bad element is one bad record, not a bad file.
 * Multi-byte UTF-8 never contains bytes below 0x80, so scanning bytes for ASCII punctuation is exact.
 */
export class JsonArrayScanner {
  private state: ScanState;
  private pos: number;
  private index: number;
  private depth = 0;
  private inString = false;
  /** A backslash was the last byte of the previous chunk inside a string. */
  private pendingEscape = false;
  private afterComma: boolean;
  private elementStart = -1;
  private parts: Uint8Array[] = [];
  /** True once the array is closed or `stopAt` was reached; later bytes are ignored. */
  done = false;
  /** True when done because of `stopAt` (the rest of the file was not checked). */
  stopped = false;

  constructor(
    private readonly uri: string,
    private readonly options: ScannerOptions,
  ) {
    this.pos = options.offset;
    this.index = options.firstIndex;
    this.state = options.atFileStart ? 'before-array' : 'before-element';
    // A partition starts at an element's first byte, which always follows a `[` or a `,`.
    this.afterComma = !options.atFileStart;
  }

  /** Absolute offset of the next byte to push. */
  get offset(): number {
    return this.pos;
  }

  /** Items seen so far (index of the next element). */
  get nextIndex(): number {
    return this.index;
  }

  private fail(at: number, what: string): never {
    throw new SourceFileError(this.uri, `not a valid JSON array: ${what} at byte ${at}`);
  }

  private startElement(abs: number): boolean {
    if (this.options.stopAt !== undefined && abs >= this.options.stopAt) {
      this.done = true;
      this.stopped = true;
      return false;
    }
    this.options.onElementStart?.(abs, this.index);
    this.elementStart = abs;
    return true;
  }

  private endElement(chunk: Uint8Array, chunkStart: number, local: number, out: ArrayElement[]): void {
    if (this.options.collect) {
      const from = Math.max(0, this.elementStart - chunkStart);
      const tail = chunk.subarray(from, local);
      let bytes: Uint8Array;
      if (this.parts.length === 0) bytes = tail;
      else {
        this.parts.push(tail);
        bytes = Buffer.concat(this.parts);
        this.parts = [];
      }
      out.push({ index: this.index, start: this.elementStart, bytes });
    }
    this.index++;
    this.elementStart = -1;
  }

  /** Feed the next chunk; completed elements are appended to `out`. */
  push(chunk: Uint8Array, out: ArrayElement[] = []): ArrayElement[] {
    if (this.done) return out;
    const chunkStart = this.pos;
    const n = chunk.length;
    let i = 0;
    // Lazily found next quote / backslash in this chunk: indexOf is far faster than a byte loop in strings.
    let nextQuote = -2;
    let nextBackslash = -2;
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (i < n) {
      const state = this.state;
      if (state === 'in-element') {
        if (this.inString) {
          if (this.pendingEscape) {
            this.pendingEscape = false;
            i++;
            continue;
          }
          if (nextQuote < i && nextQuote !== -1) nextQuote = buf.indexOf(QUOTE, i);
          if (nextBackslash < i && nextBackslash !== -1) nextBackslash = buf.indexOf(BACKSLASH, i);
          if (nextBackslash !== -1 && (nextQuote === -1 || nextBackslash < nextQuote)) {
            // Skip the escaped byte; if the backslash ends the chunk, skip the first byte of the next one.
            if (nextBackslash + 1 >= n) {
              this.pendingEscape = true;
              i = n;
            } else i = nextBackslash + 2;
            continue;
          }
          if (nextQuote === -1) {
            i = n;
            continue;
          }
          this.inString = false;
          i = nextQuote + 1;
          continue;
        }
        // Outside strings inside an element: a plain byte loop (short runs between strings).
        for (; i < n; i++) {
          const b = chunk[i];
          if (b === QUOTE) {
            this.inString = true;
            i++;
            break;
          }
          if (b === OPEN_BRACE || b === OPEN_BRACKET) this.depth++;
          else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
            if (this.depth > 0) this.depth--;
            else if (b === CLOSE_BRACKET) {
              this.endElement(chunk, chunkStart, i, out);
              this.state = 'after-array';
              i++;
              break;
            } else this.fail(chunkStart + i, "unbalanced '}'");
          } else if (b === COMMA && this.depth === 0) {
            this.endElement(chunk, chunkStart, i, out);
            this.state = 'before-element';
            this.afterComma = true;
            i++;
            break;
          }
        }
        continue;
      }
      const b = chunk[i];
      if (isJsonWhitespace(b)) {
        i++;
        continue;
      }
      const abs = chunkStart + i;
      if (state === 'before-array') {
        // A UTF-8 byte order mark may precede the array.
        if (abs === 0 && b === 0xef && n >= 3 && chunk[1] === 0xbb && chunk[2] === 0xbf) {
          i += 3;
          continue;
        }
        if (b !== OPEN_BRACKET) this.fail(abs, `expected '[' but found ${describeByte(b)}`);
        this.state = 'before-element';
        this.afterComma = false;
        i++;
      } else if (state === 'before-element') {
        if (b === CLOSE_BRACKET && !this.afterComma) {
          this.state = 'after-array';
          i++;
        } else if (b === COMMA || b === CLOSE_BRACKET) {
          // An empty element (`[1,,2]`, `[1,]`): a record that cannot be parsed, kept so counts add up.
          if (!this.startElement(abs)) break;
          this.endElement(chunk, chunkStart, i, out);
          this.state = b === COMMA ? 'before-element' : 'after-array';
          this.afterComma = true;
          i++;
        } else {
          if (!this.startElement(abs)) break;
          this.state = 'in-element';
          this.depth = 0;
          this.inString = false;
        }
      } else if (state === 'after-array') {
        this.fail(abs, `unexpected ${describeByte(b)} after the end of the array`);
      }
    }
    if (this.state === 'in-element' && this.options.collect && !this.done) {
      const from = Math.max(0, this.elementStart - chunkStart);
      // Copy: stream chunks may be pooled and reused by the producer.
      this.parts.push(Buffer.from(chunk.subarray(from)));
    }
    this.pos = chunkStart + (this.done ? i : n);
    return out;
  }

  /** True once the closing `]` has been seen. */
  get arrayClosed(): boolean {
    return this.state === 'after-array';
  }

  /** End of file: the array must be complete (unless the scan stopped early at `stopAt`). */
  end(): void {
    if (this.stopped || this.state === 'after-array') {
      this.done = true;
      return;
    }
    if (this.state === 'before-array') this.fail(this.pos, 'empty file (no array)');
    const where =
      this.elementStart >= 0 ? ` inside item ${this.index} (starting at byte ${this.elementStart})` : '';
    this.fail(this.pos, `file ends before the array is closed${where}`);
  }
}

function describeByte(b: number): string {
  return b >= 0x20 && b < 0x7f ? `'${String.fromCharCode(b)}'` : `byte 0x${b.toString(16).padStart(2, '0')}`;
}

/** Where one partition of an array starts: byte offset of an element's first byte (0 for the first) and its index. */
export interface ArrayCut {
  start: number;
  firstItem: number;
  /** Elements starting in this partition, when the file was scanned. */
  items?: number;
}

/**
 * Cut one JSON array file into byte ranges of about `targetBytes` and at most `targetRecords` items, each starting
 * at an element's first byte. Every file is scanned once, streaming, with constant memory, so each partition knows
 * its exact item count (`mixforge plan` prints it; ~100 MB/s).
 */
export async function planJsonArray(
  file: ObjectInfo,
  targetBytes: number,
  targetRecords = Number.POSITIVE_INFINITY,
): Promise<ArrayCut[]> {
  const cuts: ArrayCut[] = [{ start: 0, firstItem: 0, items: 0 }];
  let nextCut = targetBytes;
  const scanner = new JsonArrayScanner(file.uri, {
    offset: 0,
    firstIndex: 0,
    atFileStart: true,
    collect: false,
    onElementStart(offset, index) {
      if (offset >= nextCut || index - (cuts.at(-1) as ArrayCut).firstItem >= targetRecords) {
        cuts.push({ start: offset, firstItem: index, items: 0 });
        nextCut = offset + targetBytes;
      }
    },
  });
  const stream = await openOrFail(file.uri, { start: 0, end: file.size });
  try {
    for await (const chunk of stream) scanner.push(chunk);
  } catch (err) {
    if (err instanceof SourceFileError) throw err;
    throw new SourceFileError(file.uri, `cannot read: ${(err as Error).message}`, { cause: err });
  }
  if (scanner.offset !== file.size) {
    throw new SourceFileError(
      file.uri,
      `read ${scanner.offset} bytes but the file has ${file.size} (changed?)`,
    );
  }
  scanner.end();
  for (let k = 0; k < cuts.length; k++) {
    const next = k + 1 < cuts.length ? cuts[k + 1].firstItem : scanner.nextIndex;
    cuts[k].items = next - cuts[k].firstItem;
  }
  return cuts;
}

/**
 * The elements of a JSON array whose first byte lies in [start, end): element bytes, not yet parsed.
 * `start` must be 0 or an element's first byte found by planJsonArray, with `firstItem` its index.
 */
export async function* readJsonArrayElements(
  uri: string,
  range: { start: number; end: number; firstItem: number; fileSize: number },
): AsyncGenerator<ArrayElement> {
  await assertUnchanged(uri, range.fileSize);
  const isLast = range.end >= range.fileSize;
  const scanner = new JsonArrayScanner(uri, {
    offset: range.start,
    firstIndex: range.firstItem,
    atFileStart: range.start === 0,
    collect: true,
    // The last partition reads to EOF so trailing garbage is detected; others stop at the next partition.
    stopAt: isLast ? undefined : range.end,
  });
  const out: ArrayElement[] = [];
  for await (const chunk of readRangeThenTail(uri, range.start, range.end, range.fileSize)) {
    scanner.push(chunk, out);
    for (const el of out) yield el;
    out.length = 0;
    if (scanner.done || (!isLast && scanner.arrayClosed)) break;
  }
  if (!scanner.done && !(scanner.arrayClosed && !isLast)) scanner.end();
}
