// The npm-shipped Qwen tokenizer against published Qwen2 ids: the integration sequences of transformers'
// Qwen2 tokenizer tests (tests/models/qwen2/test_tokenization_qwen2.py, Qwen/Qwen-tokenizer) and the ChatML ids.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  loadQwen2Tokenizer,
  type Qwen2Tokenizer,
  shippedTokenizerPath,
  TokenizerFileError,
} from '../../../train-bridge/text/index.ts';
import { setUpInBefore } from '../../helpers/hooks.ts';

// Copied from the published test's `expected_encoding` (its padding, 151643, left off).
const PUBLISHED: [string, number[]][] = [
  [
    'Transformers (formerly known as pytorch-transformers and pytorch-pretrained-bert) provides ' +
      'general-purpose architectures (BERT, GPT-2, RoBERTa, XLM, DistilBert, XLNet...) for Natural ' +
      'Language Understanding (NLU) and Natural Language Generation (NLG) with over 32+ pretrained ' +
      'models in 100+ languages and deep interoperability between Jax, PyTorch and TensorFlow.',
    [
      8963, 388, 320, 69514, 3881, 438, 4510, 27414, 32852, 388, 323, 4510, 27414, 21334, 35722, 1455, 529, 8,
      5707, 4586, 58238, 77235, 320, 61437, 11, 479, 2828, 12, 17, 11, 11830, 61437, 64, 11, 1599, 10994, 11,
      27604, 321, 33, 529, 11, 29881, 6954, 32574, 369, 18448, 11434, 45451, 320, 45, 23236, 8, 323, 18448,
      11434, 23470, 320, 30042, 38, 8, 448, 916, 220, 18, 17, 10, 80669, 4119, 304, 220, 16, 15, 15, 10,
      15459, 323, 5538, 94130, 2897, 1948, 619, 706, 11, 5355, 51, 21584, 323, 94986, 13,
    ],
  ],
  [
    '🤗 Transformers 提供了可以轻松地下载并且训练先进的预训练模型的 API 和工具。使用预训练模型可以减少计算消耗和碳排放，并且节省从头训练所需要的时间和资源。',
    [
      144834, 80532, 93685, 83744, 34187, 73670, 104261, 29490, 62189, 103937, 104034, 102830, 98841, 104034,
      104949, 9370, 5333, 58143, 102011, 1773, 37029, 98841, 104034, 104949, 73670, 101940, 100768, 104997,
      33108, 100912, 105054, 90395, 100136, 106831, 45181, 64355, 104034, 113521, 101975, 33108, 85329, 1773,
    ],
  ],
  [
    '```python\ntokenizer = AutoTokenizer.from_pretrained("Qwen/Qwen-tokenizer")\ntokenizer("世界，你好！")```',
    [
      73594, 12669, 198, 85593, 284, 8979, 37434, 6387, 10442, 35722, 445, 48, 16948, 45274, 16948, 34841,
      3135, 1138, 85593, 445, 99489, 3837, 108386, 6313, 899, 73594,
    ],
  ],
];

describe('loadQwen2Tokenizer (npm-shipped tokenizer.json)', () => {
  let loaded: Qwen2Tokenizer | undefined;
  before(async () => {
    loaded = await loadQwen2Tokenizer();
  });
  const tok = () => setUpInBefore(loaded, 'tokenizer');

  for (const [i, [text, ids]] of PUBLISHED.entries()) {
    it(`encodes published sequence ${i + 1} to the published ids and decodes back`, () => {
      assert.deepEqual(tok().encode(text), ids);
      assert.equal(tok().decode(ids), text);
    });
  }

  it('has the published ChatML special ids, read from the file', () => {
    // 151643 is the published padding above; 151644/151645 are Qwen2's <|im_start|>/<|im_end|>.
    assert.equal(tok().eosId, 151643);
    assert.equal(tok().padId, 151643);
    assert.equal(tok().imStartId, 151644);
    assert.equal(tok().imEndId, 151645);
    assert.deepEqual(
      tok().encode('<|im_start|>user\nhi<|im_end|>\n<|endoftext|>'),
      [151644, 872, 198, 6023, 151645, 198, 151643],
    );
    assert.equal(tok().decode([151644, 77091, 198]), '<|im_start|>assistant\n');
  });

  it('counts every id it can produce (151,643 BPE ids + the added tokens)', () => {
    assert.equal(tok().vocabSize, 151669);
  });

  it('normalises NFC as Qwen2 does (the NFD form encodes like the NFC form)', () => {
    assert.deepEqual(
      tok().encode('\u03d2\u0301\u03d2\u0308\u017f\u0307'),
      tok().encode('\u03d3\u03d4\u1e9b'),
    );
  });
});

describe('loadQwen2Tokenizer errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixforge-tok-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("loads a checkpoint folder's tokenizer.json alone (no tokenizer_config.json beside it)", async () => {
    copyFileSync(shippedTokenizerPath(), join(dir, 'tokenizer.json'));
    const tok = await loadQwen2Tokenizer(join(dir, 'tokenizer.json'));
    assert.deepEqual(tok.encode(PUBLISHED[2][0]), PUBLISHED[2][1]);
    assert.equal(tok.decode([151644, 872, 198]), '<|im_start|>user\n');
  });

  it('names the file and field when tokenizer.json is not a BPE tokenizer', async () => {
    const file = join(dir, 'unigram.json');
    writeFileSync(file, JSON.stringify({ added_tokens: [], model: { type: 'Unigram', vocab: {} } }));
    await assert.rejects(loadQwen2Tokenizer(file), (e: unknown) => {
      assert.ok(e instanceof TokenizerFileError);
      assert.match(e.message, /unigram\.json: field model\.type/);
      return true;
    });
  });

  it('rejects a BPE file without the ChatML tokens', async () => {
    const file = join(dir, 'no-chatml.json');
    writeFileSync(
      file,
      JSON.stringify({
        added_tokens: [{ id: 0, content: '<|endoftext|>' }],
        model: { type: 'BPE', vocab: {} },
      }),
    );
    await assert.rejects(loadQwen2Tokenizer(file), /no-chatml\.json: added_tokens has no <\|im_start\|>/);
  });

  it('rejects a file that is not JSON, naming it', async () => {
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{');
    await assert.rejects(loadQwen2Tokenizer(file), /broken\.json: cannot read as JSON/);
  });
});
