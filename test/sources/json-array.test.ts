import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { SourceFileError } from '../../core/errors.ts';
import { JsonArrayScanner, planJsonArray, readJsonArrayElements } from '../../sources/json-array.ts';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-json-array-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileCounter = 0;
async function writeJson(text: string | Uint8Array): Promise<{ uri: string; size: number }> {
  const uri = join(dir, `f${fileCounter++}.json`);
  await writeFile(uri, text);
  return { uri, size: (await stat(uri)).size };
}

function scanInChunks(bytes: Uint8Array, cuts: number[]): unknown[] {
  const scanner = new JsonArrayScanner('mem.json', {
    offset: 0,
    firstIndex: 0,
    atFileStart: true,
    collect: true,
  });
  const values: unknown[] = [];
  let prev = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length]) {
    for (const el of scanner.push(bytes.subarray(prev, cut))) {
      assert.equal(el.index, values.length);
      values.push(JSON.parse(Buffer.from(el.bytes).toString('utf8')));
    }
    prev = cut;
  }
  scanner.end();
  return values;
}

/** Read every partition of a planned file and return (index, value) pairs in order. */
async function readAllPartitions(file: { uri: string; size: number }, targetBytes: number) {
  const cuts = await planJsonArray(file, targetBytes);
  const out: { index: number; value: unknown }[] = [];
  for (let k = 0; k < cuts.length; k++) {
    const end = k + 1 < cuts.length ? cuts[k + 1].start : file.size;
    let n = 0;
    for await (const el of readJsonArrayElements(file.uri, {
      start: cuts[k].start,
      end,
      firstItem: cuts[k].firstItem,
      fileSize: file.size,
    })) {
      assert.ok(el.start >= cuts[k].start && el.start < end, 'element starts inside its partition');
      out.push({ index: el.index, value: JSON.parse(Buffer.from(el.bytes).toString('utf8')) });
      n++;
    }
    if (cuts[k].items !== undefined) assert.equal(n, cuts[k].items);
  }
  return { cuts, out };
}

// Strings made of the characters that trip naive scanners.
const trickyString = fc
  .array(
    fc.constantFrom('[', ']', '{', '}', ',', '"', '\\', ':', ' ', '\n', 'é', '😀', '中', 'a', '\u0000', '/'),
    {
      maxLength: 12,
    },
  )
  .map((cs) => cs.join(''));
const trickyValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    trickyString,
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(trickyString, tie('value'), { maxKeys: 4 }),
  ),
}));
const trickyArray = fc.array(trickyValue.value, { maxLength: 25 });
const indent = fc.constantFrom(undefined, 0, 1, 2, '\t');

describe('JsonArrayScanner', () => {
  it('finds exactly the elements JSON.parse finds, however the bytes are chunked', () => {
    fc.assert(
      fc.property(trickyArray, indent, fc.array(fc.nat(4000), { maxLength: 8 }), (arr, ind, cuts) => {
        const bytes = Buffer.from(JSON.stringify(arr, null, ind));
        assert.deepEqual(scanInChunks(bytes, cuts), JSON.parse(bytes.toString('utf8')));
      }),
      { numRuns: 300 },
    );
  });

  it('splits a backslash escape across chunks', () => {
    const bytes = Buffer.from('["a\\"]b", "c\\\\", {"k": "\\\\\\""}]');
    for (let cut = 1; cut < bytes.length; cut++) {
      assert.deepEqual(scanInChunks(bytes, [cut]), ['a"]b', 'c\\', { k: '\\"' }]);
    }
  });

  it('accepts a byte order mark and surrounding whitespace, and an empty array', () => {
    assert.deepEqual(scanInChunks(Buffer.from('\ufeff \n[ 1 , "x" ]\n\n'), []), [1, 'x']);
    assert.deepEqual(scanInChunks(Buffer.from('[ ]'), []), []);
  });

  it('keeps empty elements as (unparseable) elements so counts add up', () => {
    const scanner = new JsonArrayScanner('m', { offset: 0, firstIndex: 0, atFileStart: true, collect: true });
    const els = scanner.push(Buffer.from('[1,,2,]'));
    scanner.end();
    assert.deepEqual(
      els.map((e) => Buffer.from(e.bytes).toString()),
      ['1', '', '2', ''],
    );
  });

  it('rejects what is not one JSON array, naming the file and the byte', () => {
    const cases: [string, RegExp][] = [
      ['{"id": 1}', /bad\.json: not a valid JSON array: expected '\[' but found '\{' at byte 0/],
      ['', /empty file/],
      ['[{"id": 1}, {"id": 2', /file ends before the array is closed inside item 1 \(starting at byte 12\)/],
      ['[1, 2] [3]', /unexpected '\[' after the end of the array at byte 7/],
      ['[{"a": 1}}]', /unbalanced '\}' at byte 9/],
    ];
    for (const [text, re] of cases) {
      assert.throws(
        () => {
          const s = new JsonArrayScanner('bad.json', {
            offset: 0,
            firstIndex: 0,
            atFileStart: true,
            collect: false,
          });
          s.push(Buffer.from(text));
          s.end();
        },
        (err: unknown) => err instanceof SourceFileError && re.test(err.message),
      );
    }
  });
});

describe('planJsonArray + readJsonArrayElements', () => {
  it('partitions cover every element exactly once, for any partition size', async () => {
    await fc.assert(
      fc.asyncProperty(
        trickyArray,
        indent,
        fc.constantFrom(1, 7, 40, 200, 1 << 20),
        async (arr, ind, target) => {
          const file = await writeJson(JSON.stringify(arr, null, ind));
          const { cuts, out } = await readAllPartitions(file, target);
          assert.deepEqual(
            out.map((o) => o.index),
            arr.map((_, i) => i),
          );
          assert.deepEqual(
            out.map((o) => o.value),
            JSON.parse(JSON.stringify(arr)),
          );
          if (target >= file.size) assert.equal(cuts.length, 1);
          for (let k = 1; k < cuts.length; k++) assert.ok(cuts[k].start > cuts[k - 1].start);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('reads large elements that span many stream chunks and partition ends', async () => {
    const arr = Array.from({ length: 40 }, (_, i) => ({ id: i, text: `${'x]'.repeat(20000 + i)}"\\` }));
    const file = await writeJson(JSON.stringify(arr));
    for (const target of [10_000, 300_000, 10 << 20]) {
      const { out } = await readAllPartitions(file, target);
      assert.deepEqual(
        out.map((o) => o.value),
        arr,
      );
    }
  });

  it('fails with SourceFileError for a missing, changed, truncated or non-array file', async () => {
    const notArray = await writeJson('{"id": "x", "conversations": []}');
    await assert.rejects(planJsonArray(notArray, 1 << 20), /not a valid JSON array: expected '\['/);
    const truncated = await writeJson(`[${'{"id": 1},'.repeat(100)}`);
    await assert.rejects(planJsonArray(truncated, 100), /file ends before the array is closed/);
    const ok = await writeJson('[1, 2, 3]');
    await assert.rejects(
      async () => {
        for await (const _ of readJsonArrayElements(ok.uri, { start: 0, end: 9, firstItem: 0, fileSize: 8 }));
      },
      (err: unknown) => err instanceof SourceFileError && /file changed/.test(err.message),
    );
    await assert.rejects(
      async () => {
        for await (const _ of readJsonArrayElements(join(dir, 'nope.json'), {
          start: 0,
          end: 9,
          firstItem: 0,
          fileSize: 9,
        }));
      },
      (err: unknown) => err instanceof SourceFileError && /nope\.json: no such file/.test(err.message),
    );
  });
});
