// The .safetensors format (Hugging Face): u64 little-endian header length, a JSON header mapping names to
// {dtype, shape, data_offsets} (+ optional "__metadata__" of strings), then one contiguous little-endian byte
// buffer. Reading validates the spec's rules; writing matches the reference writer's layout.
import { endianness } from 'node:os';
import { SourceFileError } from '../core/errors.ts';
import { normaliseUri, storageFor } from '../core/storage/index.ts';
import { fromHalfBits } from './half-float.ts';

export const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;

export type SafetensorsDtype = keyof typeof DTYPE_BYTES;

/** One tensor as stored: raw little-endian bytes, row-major. */
export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  bytes: Uint8Array;
}

export interface SafetensorsFile {
  /** Tensors in the file's byte order. */
  tensors: Map<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

/** A typed array whose element size matches the dtype (raw 16-bit patterns for F16/BF16 as Uint16Array). */
export type TensorData =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array;

export interface TensorToWrite {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  data: TensorData;
}

/** The spec's limit on the header (the reference reader refuses larger ones). */
const MAX_HEADER_BYTES = 100_000_000;
const LITTLE_ENDIAN_HOST = endianness() === 'LE';

/** Serialise tensors (+ string metadata) to the bytes of a .safetensors file. */
export function encodeSafetensors(
  tensors: Iterable<[string, TensorToWrite]>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const entries = [...tensors];
  const names = new Set<string>();
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new RangeError('"__metadata__" is reserved and cannot name a tensor');
    if (names.has(name)) throw new RangeError(`tensor "${name}" given twice`);
    names.add(name);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== numel)
      throw new RangeError(
        `tensor "${name}": shape [${t.shape}] needs ${numel} values, got ${t.data.length}`,
      );
    if (t.data.BYTES_PER_ELEMENT !== DTYPE_BYTES[t.dtype]) {
      throw new RangeError(
        `tensor "${name}": ${t.dtype} needs ${DTYPE_BYTES[t.dtype]}-byte elements, got ${t.data.BYTES_PER_ELEMENT}`,
      );
    }
  }
  // The reference writer orders by alignment (element size, largest first), then by name, so every tensor
  // starts aligned to its element size when the buffer starts 8-aligned.
  entries.sort(
    ([an, a], [bn, b]) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype] || (an < bn ? -1 : an > bn ? 1 : 0),
  );
  // Null prototype: a tensor named "__proto__" must become a key, not the object's prototype.
  const header: Record<string, unknown> = Object.create(null);
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new RangeError(`metadata "${k}" must be a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, t] of entries) {
    const end = offset + t.data.byteLength;
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, end] };
    offset = end;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  // Pad with spaces so the byte buffer starts at a multiple of 8 (as the reference writer does).
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  if (padded > json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const [, t] of entries) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(bytes, at);
    if (!LITTLE_ENDIAN_HOST) swapBytes(out.subarray(at, at + bytes.length), t.data.BYTES_PER_ELEMENT);
    at += bytes.length;
  }
  return out;
}

/** Parse and validate a .safetensors file; tensor bytes are views into `file` (no copy). */
export function decodeSafetensors(file: Uint8Array, source = '<buffer>'): SafetensorsFile {
  const fail = (message: string) => new SourceFileError(source, `not a valid safetensors file: ${message}`);
  if (file.length < 8) throw fail(`${file.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, file.length - 8))) {
    throw fail(`header length ${headerLength} exceeds the file (${file.length} bytes) or the 100 MB limit`);
  }
  const n = Number(headerLength);
  const { metadata, infos } = parseHeader(file.subarray(8, 8 + n), fail);
  const dataStart = 8 + n;
  const bufferLength = file.length - dataStart;
  const tensors = new Map<string, SafetensorsTensor>();
  checkCoverage(infos, bufferLength, fail);
  for (const info of infos) {
    tensors.set(info.name, {
      dtype: info.dtype,
      shape: info.shape,
      bytes: file.subarray(dataStart + info.begin, dataStart + info.end),
    });
  }
  return { tensors, metadata };
}

interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

function parseHeader(
  bytes: Uint8Array,
  fail: (message: string) => SourceFileError,
): { metadata: Record<string, string>; infos: TensorInfo[] } {
  if (bytes.length === 0 || bytes[0] !== 0x7b) throw fail('the header must start with "{"');
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw fail(`header is not UTF-8 JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw fail('header is not a JSON object');
  const metadata: Record<string, string> = {};
  const infos: TensorInfo[] = [];
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value))
        throw fail('__metadata__ must be an object');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') throw fail(`__metadata__.${k} must be a string`);
        setOwn(metadata, k, v);
      }
      continue;
    }
    const at = `tensor "${name}"`;
    if (value === null || typeof value !== 'object') throw fail(`${at}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES))
      throw fail(`${at}: unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw fail(`${at}: shape must be a list of non-negative integers`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) {
      throw fail(`${at}: data_offsets must be [begin, end]`);
    }
    const [begin, end] = offsets as [number, number];
    const size = DTYPE_BYTES[dtype as SafetensorsDtype] * (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== size) {
      throw fail(
        `${at}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, ${dtype} [${shape}] needs ${size}`,
      );
    }
    infos.push({ name, dtype: dtype as SafetensorsDtype, shape: shape as number[], begin, end });
  }
  return { metadata, infos };
}

/** The spec forbids holes and overlaps: sorted by offset, tensors must tile the byte buffer exactly. */
function checkCoverage(
  infos: TensorInfo[],
  bufferLength: number,
  fail: (message: string) => SourceFileError,
): void {
  const sorted = [...infos].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const info of sorted) {
    if (info.begin !== expected) {
      throw fail(
        `tensor "${info.name}" starts at byte ${info.begin}, expected ${expected} (holes and overlaps are not allowed)`,
      );
    }
    expected = info.end;
  }
  if (expected !== bufferLength)
    throw fail(`tensors cover ${expected} bytes of a ${bufferLength}-byte data buffer`);
  infos.sort((a, b) => a.begin - b.begin || a.end - b.end);
}

/** A tensor's values as float32 (from F32, F16, BF16 or F64), always a fresh array. */
export function toFloat32(t: SafetensorsTensor, name = 'tensor'): Float32Array {
  const numel = t.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(numel);
  const view = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  switch (t.dtype) {
    case 'F32':
      if (LITTLE_ENDIAN_HOST && t.bytes.byteOffset % 4 === 0) {
        out.set(new Float32Array(t.bytes.buffer, t.bytes.byteOffset, numel));
      } else {
        for (let i = 0; i < numel; i++) out[i] = view.getFloat32(4 * i, true);
      }
      return out;
    case 'F64':
      for (let i = 0; i < numel; i++) out[i] = view.getFloat64(8 * i, true);
      return out;
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < numel; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      return out;
    }
    case 'F16':
      for (let i = 0; i < numel; i++) out[i] = fromHalfBits(view.getUint16(2 * i, true));
      return out;
    default:
      throw new RangeError(`${name}: cannot read ${t.dtype} as float32`);
  }
}

/** A tensor's values as int64 (from I64, I32, U8, …), for integer buffers such as BN batch counters. */
export function toBigInt64(t: SafetensorsTensor, name = 'tensor'): BigInt64Array {
  const numel = t.shape.reduce((a, b) => a * b, 1);
  const out = new BigInt64Array(numel);
  const view = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const read: Partial<Record<SafetensorsDtype, (i: number) => bigint>> = {
    I64: (i) => view.getBigInt64(8 * i, true),
    U64: (i) => BigInt.asIntN(64, view.getBigUint64(8 * i, true)),
    I32: (i) => BigInt(view.getInt32(4 * i, true)),
    U32: (i) => BigInt(view.getUint32(4 * i, true)),
    I16: (i) => BigInt(view.getInt16(2 * i, true)),
    U16: (i) => BigInt(view.getUint16(2 * i, true)),
    I8: (i) => BigInt(view.getInt8(i)),
    U8: (i) => BigInt(view.getUint8(i)),
  };
  const f = read[t.dtype];
  if (!f) throw new RangeError(`${name}: cannot read ${t.dtype} as an integer`);
  for (let i = 0; i < numel; i++) out[i] = f(i);
  return out;
}

function swapBytes(bytes: Uint8Array, width: number): void {
  if (width === 1) return;
  for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
}

/** Read and validate a .safetensors file from a local path, file:// or s3:// URI. */
export async function readSafetensors(location: string): Promise<SafetensorsFile> {
  const uri = normaliseUri(location);
  const bytes = await storageFor(uri).readAll(uri);
  return decodeSafetensors(bytes, uri);
}

/** Only the header (names, dtypes, shapes, metadata) of a file, reading its first bytes only. */
export async function readSafetensorsHeader(location: string): Promise<{
  metadata: Record<string, string>;
  tensors: Map<string, { dtype: SafetensorsDtype; shape: number[] }>;
}> {
  const uri = normaliseUri(location);
  const storage = storageFor(uri);
  const fail = (message: string) => new SourceFileError(uri, `not a valid safetensors file: ${message}`);
  const info = await storage.stat(uri);
  if (!info) throw new SourceFileError(uri, 'no such file or object');
  if (info.size < 8) throw fail(`${info.size} bytes, shorter than the 8-byte header length`);
  const lengthBytes = await storage.readRange(uri, 0, 8);
  const n = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(Math.min(MAX_HEADER_BYTES, info.size - 8)))
    throw fail(`header length ${n} exceeds the file or 100 MB`);
  const { metadata, infos } = parseHeader(await storage.readRange(uri, 8, 8 + Number(n)), fail);
  checkCoverage(infos, info.size - 8 - Number(n), fail);
  return { metadata, tensors: new Map(infos.map((t) => [t.name, { dtype: t.dtype, shape: t.shape }])) };
}

/** Write tensors to a .safetensors file atomically (readers see all of it or nothing). */
export async function writeSafetensors(
  location: string,
  tensors: Iterable<[string, TensorToWrite]>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const uri = normaliseUri(location);
  await storageFor(uri).writeAtomic(uri, encodeSafetensors(tensors, metadata));
}

/** obj[key] = value as an own data property, also for "__proto__" (plain assignment would set the prototype). */
function setOwn(obj: Record<string, string>, key: string, value: string): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}
