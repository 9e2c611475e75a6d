// Packed rows keep samples apart (fastvlm-tiny on lavapipe): changing one sample of a pack — its tokens, its image
// and its length, so the later samples move — leaves the other samples' hidden states and logits bit for bit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FastVLMGpu } from '../../../train-bridge/model/fastvlm-gpu.ts';
import { collatePacked, loadQwen2Tokenizer, type SequenceLayout } from '../../../train-bridge/text/index.ts';
import { oracleLayouts, oracleModel, randomImages, toNhwc } from '../model/fastvlm-fixtures.ts';
import { useTrainerSuite } from './trainer-suite.ts';

const suite = useTrainerSuite();

test('no token attends across samples: the other samples’ logits stay as they were', {
  timeout: 600_000,
}, async () => {
  const { eng } = suite;
  const r = 64;
  const tok = await loadQwen2Tokenizer();
  const [first, , , textOnly, twoImages] = await oracleLayouts(r);
  const [other] = await oracleLayouts(r, [
    [
      {
        from: 'human',
        value:
          '<image>\nSomething else entirely: a much longer question this time, with quite a few more words?',
      },
      { from: 'gpt', value: 'A different answer.' },
    ],
  ]);
  assert.notEqual(first!.length, other!.length, 'the later samples sit at other offsets');
  const gpu = new FastVLMGpu(eng, oracleModel(12), { vision: false, projector: false, lm: false });
  const raw = randomImages(4, r, 6);
  const all = toNhwc(raw.data, raw.shape);
  const plane = r * r * 3;
  /** The lead sample's last row, and the rows and logits of the two samples after it. */
  const run = async (lead: SequenceLayout, leadImage: number) => {
    const batch = collatePacked([[lead, textOnly!, twoImages!]], tok.padId);
    const pixels = new Float32Array(3 * plane);
    pixels.set(all.subarray(leadImage * plane, (leadImage + 1) * plane), 0);
    pixels.set(all.subarray(plane, 3 * plane), plane);
    const img = eng.upload(pixels, [3, r, r, 3]);
    const from = lead.length;
    const rows = Int32Array.from({ length: textOnly!.length + twoImages!.length }, (_, i) => from + i);
    const out = eng.noGrad(() =>
      eng.tidy(() => {
        const hidden = gpu.decode(gpu.inputEmbeddings(batch, gpu.imageTokens(img, 'eval')), batch);
        return { hidden, logits: gpu.logitsAt(hidden, rows) };
      }),
    );
    const hidden = await out.hidden.read();
    const logits = await out.logits.read();
    for (const t of [img, out.hidden, out.logits]) t.dispose();
    const D = hidden.length / batch.seqLen;
    return {
      leadLast: hidden.slice((from - 1) * D, from * D),
      rest: hidden.slice(from * D, (from + rows.length) * D),
      logits,
    };
  };
  const a = await run(first!, 0);
  const b = await run(other!, 3);
  const moved = a.leadLast.reduce((m, x, i) => Math.max(m, Math.abs(x - (b.leadLast[i] as number))), 0);
  assert.ok(moved > 1e-3, `the changed sample changed (${moved})`);
  assert.deepEqual(b.rest, a.rest, 'hidden states of the other samples');
  assert.deepEqual(b.logits, a.logits, 'logits of the other samples');
  gpu.dispose();
});
