// FastVLM checkpoints in the published LLaVA-Qwen2 layout: names, config.json, single file and shards with an
// index, the tied head's copy, partial loads (a Qwen2-only checkpoint), and errors naming the file.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FastVLM, fastVLMConfig, initFastVLM } from '../../../train-bridge/model/fastvlm.ts';
import {
  fastVLMConfigJson,
  INDEX_FILE,
  loadFastVLM,
  readCheckpointTensors,
  saveFastVLM,
} from '../../../train-bridge/model/fastvlm-checkpoint.ts';
import { stateDictTensors } from '../../../train-bridge/model/state-dict.ts';
import { writeSafetensors } from '../../../train-bridge/safetensors.ts';

function tiny(seed: number): FastVLM {
  const m = new FastVLM(fastVLMConfig('fastvlm-tiny'));
  initFastVLM(m, seed);
  return m;
}

function sameTensors(a: FastVLM, b: FastVLM): void {
  const bt = new Map(b.stateEntries());
  let n = 0;
  for (const [name, t] of a.stateEntries()) {
    const u = bt.get(name);
    assert.ok(u, name);
    assert.deepEqual(u.data, t.data, name);
    n++;
  }
  assert.equal(n, bt.size);
}

describe('FastVLM checkpoints', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mixforge-fastvlm-ckpt-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('uses the published names and config fields', async () => {
    const m = tiny(1);
    const names = [...m.stateEntries()].map(([n]) => n);
    for (const expected of [
      'model.embed_tokens.weight',
      'model.layers.0.self_attn.q_proj.bias',
      'model.layers.1.self_attn.o_proj.weight',
      'model.layers.1.mlp.down_proj.weight',
      'model.layers.0.input_layernorm.weight',
      'model.layers.0.post_attention_layernorm.weight',
      'model.norm.weight',
      'model.mm_projector.0.weight',
      'model.mm_projector.2.bias',
      'model.vision_tower.vision_tower.model.patch_embed.0.rbr_conv.0.conv.weight',
      'model.vision_tower.vision_tower.model.conv_exp.se.reduce.weight',
    ])
      assert.ok(names.includes(expected), expected);
    assert.ok(!names.includes('model.layers.0.self_attn.o_proj.bias'), 'o_proj has no bias');
    assert.ok(!names.includes('lm_head.weight'), 'tied: no head of its own');
    const config = fastVLMConfigJson(fastVLMConfig('fastvlm-0.5b'));
    assert.equal(config.model_type, 'llava_qwen2');
    assert.equal(config.mm_hidden_size, 3072);
    assert.equal(config.hidden_size, 896);
    assert.equal(config.tie_word_embeddings, true);
  });

  it('round-trips through one file, keeping a tied head copy as the published files do', async () => {
    const m = tiny(2);
    const out = join(dir, 'single');
    const tok = join(dir, 'tok.json');
    await writeFile(tok, '{"model":{}}');
    await saveFastVLM(out, m, { tokenizer: tok });
    assert.deepEqual((await readdir(out)).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
    const file = await readCheckpointTensors(out);
    assert.deepEqual(
      file.tensors.get('lm_head.weight')?.bytes,
      file.tensors.get('model.embed_tokens.weight')?.bytes,
    );
    const back = await loadFastVLM(out);
    assert.deepEqual(back.missing, []);
    assert.equal(back.model.config.name, 'fastvlm-tiny');
    sameTensors(m, back.model);
  });

  it('round-trips through shards with an index', async () => {
    const m = tiny(3);
    const out = join(dir, 'sharded');
    await saveFastVLM(out, m, { shardBytes: 4 << 20 });
    const files = (await readdir(out)).filter((f) => f.endsWith('.safetensors')).sort();
    assert.ok(files.length >= 2, files.join(', '));
    assert.match(files[0]!, /^model-00001-of-0000\d\.safetensors$/);
    const index = JSON.parse(await readFile(join(out, INDEX_FILE), 'utf8'));
    assert.equal(index.weight_map['model.norm.weight'] !== undefined, true);
    assert.ok(index.metadata.total_size > 4 << 20);
    sameTensors(m, (await loadFastVLM(out)).model);
  });

  it('loads a Qwen2-only checkpoint partially and strictly refuses it, naming what is missing', async () => {
    const m = tiny(4);
    const out = join(dir, 'qwen2-only');
    await saveFastVLM(out, m);
    const lmOnly = stateDictTensors(m).filter(
      ([n]) => !n.includes('vision_tower') && !n.includes('mm_projector'),
    );
    await writeSafetensors(join(out, 'model.safetensors'), lmOnly);
    await assert.rejects(loadFastVLM(out), /missing model\.vision_tower\.vision_tower\.model\./);
    const partial = await loadFastVLM(out, { partial: true, init: (x) => initFastVLM(x, 9) });
    assert.ok(partial.missing.some((n) => n.startsWith('model.mm_projector.')));
    assert.deepEqual(partial.model.model.norm.weight.data, m.model.norm.weight.data);
  });
});
