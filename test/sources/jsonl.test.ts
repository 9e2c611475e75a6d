import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { SourceFileError } from '../../core/errors.ts';
import { planJsonl, readJsonlLines } from '../../sources/jsonl.ts';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-jsonl-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileCounter = 0;
async function writeLines(text: string): Promise<{ uri: string; size: number }> {
  const uri = join(dir, `f${fileCounter++}.jsonl`);
  await writeFile(uri, text);
  return { uri, size: (await stat(uri)).size };
}

async function readAll(file: { uri: string; size: number }, target: number) {
  const cuts = await planJsonl(file, target);
  const out: { line: number; text: string }[] = [];
  for (let k = 0; k < cuts.length; k++) {
    const end = k + 1 < cuts.length ? cuts[k + 1].start : file.size;
    let n = 0;
    for await (const l of readJsonlLines(file.uri, {
      start: cuts[k].start,
      end,
      firstItem: cuts[k].firstItem,
      fileSize: file.size,
    })) {
      out.push({ line: l.line, text: l.text });
      n++;
    }
    if (cuts[k].lines !== undefined) assert.equal(n, cuts[k].lines, `lines in partition ${k}`);
  }
  return { cuts, out };
}

const lineText = fc
  .array(fc.constantFrom('{', '}', '"', '\\', 'é', '😀', 'x', ' ', '\r'), { maxLength: 30 })
  .map((cs) => cs.join(''));

describe('jsonl partitions', () => {
  it('cover every line exactly once with its 1-based number, for any partition size', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(lineText, { maxLength: 40 }),
        fc.boolean(),
        fc.constantFrom(1, 5, 33, 1 << 20),
        async (lines, trailingNewline, target) => {
          const text = lines.join('\n') + (trailingNewline && lines.length > 0 ? '\n' : '');
          const file = await writeLines(text);
          const { out } = await readAll(file, target);
          // What a plain split says the lines are (a final empty piece after a trailing newline is no line).
          const expected = text === '' ? [] : text.split('\n');
          if (text.endsWith('\n')) expected.pop();
          assert.deepEqual(
            out.map((o) => o.line),
            expected.map((_, i) => i + 1),
          );
          assert.deepEqual(
            out.map((o) => o.text),
            expected.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l)),
          );
        },
      ),
      { numRuns: 80 },
    );
  });

  it('strips CRLF and a byte order mark, and reads long lines across chunks and partition ends', async () => {
    const long = `{"v": "${'y'.repeat(300_000)}"}`;
    const file = await writeLines(`\ufeff{"a":1}\r\n${long}\n\n{"b":2}`);
    for (const target of [4, 100_000, 1 << 20]) {
      const { out } = await readAll(file, target);
      assert.deepEqual(out, [
        { line: 1, text: '{"a":1}' },
        { line: 2, text: long },
        { line: 3, text: '' },
        { line: 4, text: '{"b":2}' },
      ]);
    }
  });

  it('refuses a partition start that is not a line start (file changed since plan)', async () => {
    const file = await writeLines('{"a":1}\n{"b":2}\n');
    await assert.rejects(
      async () => {
        for await (const _ of readJsonlLines(file.uri, {
          start: 3,
          end: 16,
          firstItem: 1,
          fileSize: file.size,
        }));
      },
      (err: unknown) => err instanceof SourceFileError && /is not a line start/.test(err.message),
    );
  });
});
