// .safetensors: a file assembled byte by byte from the format spec loads; our writer's bytes follow the spec
// (length prefix, 8-byte alignment, contiguous offsets); round trips hold; malformed files are refused.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  type TensorToWrite,
  toBigInt64,
  toFloat32,
  writeSafetensors,
} from '../../train-bridge/safetensors.ts';

/** Build a file the way the spec describes it, independently of our writer. */
function handMade(header: string, data: number[]): Uint8Array {
  const json = Buffer.from(header, 'utf8');
  const out = Buffer.alloc(8 + json.length + data.length);
  out.writeUInt32LE(json.length, 0); // u64 LE: low word, high word stays 0
  json.copy(out, 8);
  Buffer.from(data).copy(out, 8 + json.length);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

function f32le(...values: number[]): number[] {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => {
    b.writeFloatLE(v, 4 * i);
  });
  return [...b];
}

describe('safetensors', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mixforge-safetensors-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a hand-assembled file: F32 matrix, BF16 and F16 vectors, I64 scalar, metadata', () => {
    // bf16 0x3FC0 = 1.5, 0xC000 = -2; f16 0x3C00 = 1, 0xC100 = -2.5; i64 7.
    const data = [
      ...f32le(1, 2, 3, 4, 5, 6),
      0xc0,
      0x3f,
      0x00,
      0xc0,
      0x00,
      0x3c,
      0x00,
      0xc1,
      7,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
    ];
    const header =
      '{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},' +
      '"b":{"dtype":"BF16","shape":[2],"data_offsets":[24,28]},' +
      '"h":{"dtype":"F16","shape":[2],"data_offsets":[28,32]},' +
      '"n":{"dtype":"I64","shape":[],"data_offsets":[32,40]},' +
      '"__metadata__":{"format":"pt"}}   ';
    const file = decodeSafetensors(handMade(header, data));
    assert.deepEqual(file.metadata, { format: 'pt' });
    assert.deepEqual([...file.tensors.keys()], ['w', 'b', 'h', 'n']);
    assert.deepEqual(file.tensors.get('w')!.shape, [2, 3]);
    assert.deepEqual([...toFloat32(file.tensors.get('w')!)], [1, 2, 3, 4, 5, 6]);
    assert.deepEqual([...toFloat32(file.tensors.get('b')!)], [1.5, -2]);
    assert.deepEqual([...toFloat32(file.tensors.get('h')!)], [1, -2.5]);
    assert.deepEqual(file.tensors.get('n')!.shape, []);
    assert.deepEqual([...toBigInt64(file.tensors.get('n')!)], [7n]);
  });

  it('writes the layout the spec and the reference writer use', () => {
    const bytes = encodeSafetensors(
      [
        ['b.small', { dtype: 'F32', shape: [2], data: Float32Array.from([0.5, -1]) }],
        ['a.count', { dtype: 'I64', shape: [], data: BigInt64Array.from([3n]) }],
        ['a.weight', { dtype: 'F32', shape: [1, 2], data: Float32Array.from([7, 8]) }],
      ],
      { format: 'pt' },
    );
    const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    const n = Number(view.readBigUInt64LE(0));
    assert.equal((8 + n) % 8, 0, 'data starts 8-byte aligned');
    const header = JSON.parse(view.subarray(8, 8 + n).toString('utf8'));
    assert.deepEqual(header.__metadata__, { format: 'pt' });
    // Larger elements first, then by name; offsets contiguous from 0.
    assert.deepEqual(header['a.count'], { dtype: 'I64', shape: [], data_offsets: [0, 8] });
    assert.deepEqual(header['a.weight'], { dtype: 'F32', shape: [1, 2], data_offsets: [8, 16] });
    assert.deepEqual(header['b.small'], { dtype: 'F32', shape: [2], data_offsets: [16, 24] });
    assert.equal(bytes.length, 8 + n + 24);
    assert.equal(view.readBigInt64LE(8 + n), 3n);
    assert.equal(view.readFloatLE(8 + n + 8), 7);
    assert.equal(view.readFloatLE(8 + n + 20), -1);
    assert.match(view.subarray(8, 8 + n).toString('utf8'), /^\{.*\} *$/);
  });

  it('round-trips arbitrary tensors and metadata', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.string({ minLength: 1, maxLength: 12 }).filter((s) => s !== '__metadata__'),
          {
            minLength: 0,
            maxLength: 5,
          },
        ),
        fc.array(fc.float({ noNaN: true }), { minLength: 0, maxLength: 20 }),
        fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 10 }), { maxKeys: 3 }),
        (names, values, metadata) => {
          const tensors = names.map((name, i): [string, TensorToWrite] => [
            name,
            { dtype: 'F32', shape: [values.length], data: Float32Array.from(values.map((v) => v + i)) },
          ]);
          const file = decodeSafetensors(encodeSafetensors(tensors, metadata));
          assert.deepEqual(file.metadata, Object.keys(metadata).length ? { ...metadata } : {});
          assert.equal(file.tensors.size, names.length);
          for (const [name, t] of tensors) assert.deepEqual(toFloat32(file.tensors.get(name)!), t.data);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('keeps a tensor and a metadata key named "__proto__" (regression: they became the header\'s prototype)', () => {
    const metadata = JSON.parse('{"__proto__":"m","format":"pt"}') as Record<string, string>;
    const file = decodeSafetensors(
      encodeSafetensors(
        [
          ['__proto__', { dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) }],
          ['constructor', { dtype: 'F32', shape: [1], data: Float32Array.of(3) }],
        ],
        metadata,
      ),
    );
    assert.deepEqual([...file.tensors.keys()].sort(), ['__proto__', 'constructor']);
    assert.deepEqual(toFloat32(file.tensors.get('__proto__')!), Float32Array.of(1, 2));
    assert.deepEqual(Object.entries(file.metadata).sort(), [
      ['__proto__', 'm'],
      ['format', 'pt'],
    ]);
  });

  it('refuses files that break the spec, naming the problem', () => {
    const ok = '{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
    const bad: Array<[Uint8Array, RegExp]> = [
      [new Uint8Array(5), /shorter than the 8-byte header length/],
      [handMade(ok, f32le(1)).subarray(0, 20), /header length 54 exceeds the file \(20 bytes\)/],
      [handMade(` ${ok}`, f32le(1)), /must start with "\{"/],
      [handMade('{"x":', f32le(1)), /not UTF-8 JSON/],
      [handMade(ok, [...f32le(1), 0]), /cover 4 bytes of a 5-byte data buffer/],
      [
        handMade('{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', f32le(1)),
        /hold 4 bytes, F32 \[2\] needs 8/,
      ],
      [handMade('{"x":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}', f32le(1)), /unsupported dtype "Q4"/],
      [
        handMade(
          '{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
          f32le(1, 2),
        ),
        /starts at byte 4, expected 0/,
      ],
      [handMade('{"__metadata__":{"a":1}}', []), /__metadata__.a must be a string/],
    ];
    for (const [bytes, message] of bad)
      assert.throws(() => decodeSafetensors(bytes, 'f.safetensors'), message);
    assert.throws(
      () => decodeSafetensors(new Uint8Array(5), 'f.safetensors'),
      /^SourceFileError: f.safetensors:/,
    );
    assert.throws(
      () => encodeSafetensors([['x', { dtype: 'F32', shape: [3], data: new Float32Array(2) }]]),
      /needs 3 values, got 2/,
    );
    assert.throws(
      () => encodeSafetensors([['x', { dtype: 'F64', shape: [1], data: new Float32Array(1) }]]),
      /8-byte/,
    );
  });

  it('writes and reads files through storage; the header alone is readable', async () => {
    const path = join(dir, 'w.safetensors');
    await writeSafetensors(
      path,
      [['m.w', { dtype: 'F32', shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) }]],
      {
        note: 'x',
      },
    );
    const file = await readSafetensors(path);
    assert.deepEqual([...toFloat32(file.tensors.get('m.w')!)], [1, 2, 3, 4]);
    const header = await readSafetensorsHeader(path);
    assert.deepEqual(header.tensors.get('m.w'), { dtype: 'F32', shape: [2, 2] });
    assert.deepEqual(header.metadata, { note: 'x' });
    await writeFile(join(dir, 'junk.safetensors'), 'not a safetensors file at all');
    await assert.rejects(
      readSafetensorsHeader(join(dir, 'junk.safetensors')),
      /junk\.safetensors: not a valid safetensors file/,
    );
  });
});
