// A plain .tar image root read in place: member headers are indexed once by ranged reads that hop from header
// to header (ustar, GNU long names, pax paths and sizes), then each image is one ranged read.
import { SourceFileError } from '../../core/errors.ts';
import { storageFor } from '../../core/storage/index.ts';
import { commonTopFolder, findMember, openArchiveRanges } from './archive.ts';
import { canonicalMemberName } from './safe-path.ts';
import { type ImageLookup, type ImageRoot, missing } from './types.ts';

const BLOCK = 512;
/** Header hops read this much at a time: small members then share one request. */
const INDEX_BLOCK_BYTES = 64 << 10;

/** Advice shared by the .tar.gz checks: how to turn Cambrian's archives into something readable in place. */
export const GZIP_TAR_ADVICE =
  'compressed tar archives cannot be read member by member; decompress it first (`gunzip -k x.tar.gz`; for ' +
  'split archives `cat x.tar.gz_part* | gunzip > x.tar`) and point at the .tar, or extract it into a folder';

function cString(bytes: Uint8Array, start: number, end: number): string {
  let stop = start;
  while (stop < end && bytes[stop] !== 0) stop++;
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, stop - start).toString('utf8');
}

function parseOctal(bytes: Uint8Array, start: number, end: number): number {
  // GNU base-256 for values that do not fit in octal (members over 8 GiB).
  if (bytes[start] & 0x80) {
    let v = bytes[start] & 0x7f;
    for (let i = start + 1; i < end; i++) v = v * 256 + bytes[i];
    return v;
  }
  const text = cString(bytes, start, end).trim();
  return text === '' ? 0 : Number.parseInt(text, 8);
}

function checksumOk(header: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i];
  return sum === parseOctal(header, 148, 156);
}

function isZeroBlock(header: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (header[i] !== 0) return false;
  return true;
}

/** pax extended header records: `<len> <key>=<value>\n`, where `len` counts bytes of the whole record. */
function parsePax(bytes: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  while (pos < buf.length) {
    const space = buf.indexOf(0x20, pos);
    if (space < 0) break;
    const len = Number.parseInt(buf.toString('latin1', pos, space), 10);
    if (!(len > space - pos)) break;
    const record = buf.toString('utf8', space + 1, Math.min(buf.length, pos + len)).replace(/\n$/, '');
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  return out;
}

export class TarRoot implements ImageRoot {
  private constructor(
    readonly uri: string,
    private readonly byName: Map<string, number>,
    private readonly dataOffset: Float64Array,
    private readonly dataSize: Float64Array,
    private readonly topFolder: string | undefined,
  ) {}

  static async open(uri: string): Promise<TarRoot> {
    const { size: archiveSize, ranges } = await openArchiveRanges(uri, {
      blockBytes: INDEX_BLOCK_BYTES,
      maxBlocks: 1,
    });
    const byName = new Map<string, number>();
    let offsets = new Float64Array(1024);
    let sizes = new Float64Array(1024);
    let count = 0;
    let longName: string | undefined;
    let pax: Map<string, string> | undefined;
    let pos = 0;
    try {
      while (pos + BLOCK <= archiveSize) {
        const header = await ranges.read(pos, pos + BLOCK);
        if (pos === 0 && header[0] === 0x1f && header[1] === 0x8b)
          throw new SourceFileError(uri, GZIP_TAR_ADVICE);
        if (isZeroBlock(header)) break;
        if (!checksumOk(header)) {
          throw new SourceFileError(uri, `not a tar archive (bad header checksum at byte ${pos})`);
        }
        const type = String.fromCharCode(header[156] || 0x30);
        const posixUstar = cString(header, 257, 263) === 'ustar' && cString(header, 263, 265) === '00';
        let size = parseOctal(header, 124, 136);
        if (pax?.has('size')) size = Number(pax.get('size'));
        const dataStart = pos + BLOCK;
        const next = dataStart + Math.ceil(size / BLOCK) * BLOCK;
        if (type === 'L' || type === 'x') {
          const data = await storageFor(uri).readRange(uri, dataStart, dataStart + size);
          if (type === 'L') longName = cString(data, 0, data.length);
          else pax = parsePax(data);
        } else {
          let name = cString(header, 0, 100);
          if (posixUstar) {
            const prefix = cString(header, 345, 500);
            if (prefix) name = `${prefix}/${name}`;
          }
          if (longName !== undefined) name = longName;
          if (pax?.has('path')) name = pax.get('path') ?? name;
          longName = undefined;
          pax = undefined;
          // Regular files only: links and devices are never served (a link could point anywhere).
          const canonical = type === '0' || type === '7' ? canonicalMemberName(name) : undefined;
          if (canonical !== undefined && type !== 'g') {
            if (count === offsets.length) {
              const o = new Float64Array(count * 2);
              o.set(offsets);
              offsets = o;
              const s = new Float64Array(count * 2);
              s.set(sizes);
              sizes = s;
            }
            offsets[count] = dataStart;
            sizes[count] = size;
            byName.set(canonical, count++);
          }
        }
        if (next > archiveSize)
          throw new SourceFileError(uri, `truncated tar archive (member at byte ${pos})`);
        pos = next;
      }
    } catch (err) {
      if (err instanceof SourceFileError) throw err;
      throw new SourceFileError(uri, `cannot index tar archive: ${(err as Error).message}`, { cause: err });
    }
    return new TarRoot(uri, byName, offsets, sizes, commonTopFolder(byName.keys()));
  }

  get size(): number {
    return this.byName.size;
  }

  async readChecked(path: string): Promise<ImageLookup> {
    const k = findMember((name) => this.byName.get(name), this.topFolder, path);
    if (k === undefined) return missing(`image '${path}' is not a regular file in ${this.uri}`);
    const start = this.dataOffset[k];
    try {
      return {
        found: true,
        bytes: await storageFor(this.uri).readRange(this.uri, start, start + this.dataSize[k]),
      };
    } catch (err) {
      throw new SourceFileError(this.uri, `cannot read member '${path}': ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
}
