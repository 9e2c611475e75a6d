// A .zip image root (LLaVA-Pretrain's images.zip) read in place with yauzl over ranged storage reads: the
// central directory is indexed once into compact typed arrays, then each member is fetched on demand.
import { PassThrough, type Readable } from 'node:stream';
import yauzl from 'yauzl';
import { SourceFileError } from '../../core/errors.ts';
import { commonTopFolder, findMember, openArchiveRanges } from './archive.ts';
import type { CachedRangeReader } from './range-cache.ts';
import { canonicalMemberName } from './safe-path.ts';
import { type ImageLookup, type ImageRoot, missing } from './types.ts';

/** Central directory reads come in blocks this big (a 558K-entry directory is ~36 MB). */
const DIRECTORY_BLOCK_BYTES = 4 << 20;
/** Local headers carry extra fields the central directory may not: fetch this much past the expected end. */
const LOCAL_HEADER_SLACK = 1024;

/** yauzl's reader interface over CachedRangeReader (yauzl asks for streams; we answer from ranged reads). */
class StorageZipReader extends yauzl.RandomAccessReader {
  constructor(readonly ranges: CachedRangeReader) {
    super();
  }

  override _readStreamForRange(start: number, end: number): Readable {
    const out = new PassThrough();
    this.ranges.read(start, end).then(
      (bytes) => out.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)),
      (err: unknown) => out.destroy(err as Error),
    );
    return out;
  }
}

/** Member table in typed arrays: ~40 bytes per member instead of a yauzl Entry object (~1 KB). */
class MemberTable {
  private readonly byName = new Map<string, number>();
  count = 0;
  localHeader = new Float64Array(1024);
  compressedSize = new Float64Array(1024);
  uncompressedSize = new Float64Array(1024);
  method = new Uint16Array(1024);
  flags = new Uint16Array(1024);
  nameBytes = new Uint16Array(1024);

  add(name: string, e: yauzl.Entry): void {
    if (this.count === this.method.length) this.grow();
    const k = this.count++;
    this.byName.set(name, k);
    this.localHeader[k] = e.relativeOffsetOfLocalHeader;
    this.compressedSize[k] = e.compressedSize;
    this.uncompressedSize[k] = e.uncompressedSize;
    this.method[k] = e.compressionMethod;
    this.flags[k] = e.generalPurposeBitFlag;
    this.nameBytes[k] = e.fileNameLength;
  }

  private grow(): void {
    const n = this.method.length * 2;
    const f64 = (a: Float64Array<ArrayBuffer>) => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    const u16 = (a: Uint16Array<ArrayBuffer>) => {
      const b = new Uint16Array(n);
      b.set(a);
      return b;
    };
    this.localHeader = f64(this.localHeader);
    this.compressedSize = f64(this.compressedSize);
    this.uncompressedSize = f64(this.uncompressedSize);
    this.method = u16(this.method);
    this.flags = u16(this.flags);
    this.nameBytes = u16(this.nameBytes);
  }

  find(name: string): number | undefined {
    return this.byName.get(name);
  }

  names(): Iterable<string> {
    return this.byName.keys();
  }

  /** A yauzl Entry carrying just what openReadStream uses. */
  entry(k: number): yauzl.Entry {
    return Object.assign(new yauzl.Entry(), {
      relativeOffsetOfLocalHeader: this.localHeader[k],
      compressedSize: this.compressedSize[k],
      uncompressedSize: this.uncompressedSize[k],
      compressionMethod: this.method[k],
      generalPurposeBitFlag: this.flags[k],
    });
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A member's name. Zips without the UTF-8 flag are CP437 by the spec, but Info-ZIP under a non-UTF-8 locale
 * and many other writers store UTF-8 bytes unflagged: take valid UTF-8 as UTF-8, else follow yauzl (CP437).
 */
function memberName(e: yauzl.Entry): string {
  const bytes = e.fileName as unknown as Buffer;
  if (!(e.generalPurposeBitFlag & 0x800) && !e.extraFields.some((f) => f.id === 0x7075)) {
    try {
      return strictUtf8.decode(bytes);
    } catch {
      // not UTF-8: CP437 below
    }
  }
  return yauzl.getFileNameLowLevel(e.generalPurposeBitFlag, bytes, e.extraFields, false);
}

export class ZipRoot implements ImageRoot {
  private constructor(
    readonly uri: string,
    private readonly zip: yauzl.ZipFile,
    private readonly reader: StorageZipReader,
    private readonly members: MemberTable,
    /** When every member lives under one folder, paths are also tried under it. */
    private readonly topFolder: string | undefined,
  ) {}

  static async open(uri: string): Promise<ZipRoot> {
    const { size, ranges } = await openArchiveRanges(uri, {
      blockBytes: DIRECTORY_BLOCK_BYTES,
      maxBlocks: 2,
    });
    const reader = new StorageZipReader(ranges);
    const members = new MemberTable();
    let zip: yauzl.ZipFile;
    try {
      zip = await yauzl.fromRandomAccessReaderPromise(reader, size, {
        lazyEntries: true,
        autoClose: false,
        // Names are decoded below without yauzl's validation: one odd member name must not fail the archive;
        // such members are simply never matched by a checked image path.
        decodeStrings: false,
        validateEntrySizes: true,
      });
      await new Promise<void>((resolve, reject) => {
        zip.on('entry', (e: yauzl.Entry) => {
          const raw = memberName(e);
          const name = raw.endsWith('/') ? undefined : canonicalMemberName(raw);
          if (name !== undefined) members.add(name, e);
          zip.readEntry();
        });
        zip.on('end', () => resolve());
        zip.on('error', reject);
        zip.readEntry();
      });
    } catch (err) {
      throw new SourceFileError(uri, `not a readable zip archive: ${(err as Error).message}`, { cause: err });
    }
    ranges.clear();
    ranges.blockBytes = 0;
    return new ZipRoot(uri, zip, reader, members, commonTopFolder(members.names()));
  }

  get size(): number {
    return this.members.count;
  }

  async readChecked(path: string): Promise<ImageLookup> {
    const k = findMember((name) => this.members.find(name), this.topFolder, path);
    if (k === undefined) return missing(`image '${path}' is not a member of ${this.uri}`);
    const entry = this.members.entry(k);
    // One request for the local header and the data together.
    this.reader.ranges.hint(
      entry.relativeOffsetOfLocalHeader,
      30 + this.members.nameBytes[k] + entry.compressedSize + LOCAL_HEADER_SLACK,
    );
    try {
      const stream = await this.zip.openReadStreamPromise(entry);
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      return { found: true, bytes: Buffer.concat(chunks) };
    } catch (err) {
      throw new SourceFileError(this.uri, `cannot read member '${path}': ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
}
