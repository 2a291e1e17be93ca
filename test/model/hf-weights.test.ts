// loadHfWeights: HF tensor names and shapes → ModelWeights (with Qwen2 q/k/v biases), checked by
// running the engine on weights loaded from an in-memory TensorSource against the same tiny model
// built directly; and the error lines for missing and mis-shaped tensors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadHfWeights } from '../../src/model/load.ts';
import type { TensorSource } from '../../src/io/safetensors.ts';
import { Session } from '../../src/model/llama.ts';
import { tinyModel, type Raw } from './tiny-model.ts';

function fakeSource(tensors: Map<string, { shape: number[]; data: Float32Array }>): TensorSource {
  return {
    metadata: {},
    names: () => [...tensors.keys()].sort(),
    has: (n) => tensors.has(n),
    info: (n) => {
      const t = tensors.get(n);
      if (!t) throw new Error(`missing ${n}`);
      return { name: n, dtype: 'F32', shape: t.shape, file: 'mem', offset: 0, byteLength: t.data.length * 4 };
    },
    read: (n) => tensors.get(n)!.data,
    readF32: (n) => Float32Array.from(tensors.get(n)!.data),
    close: () => {},
  };
}

function hfTensors(raw: Raw): Map<string, { shape: number[]; data: Float32Array }> {
  const m = new Map<string, { shape: number[]; data: Float32Array }>();
  const put = (name: string, shape: number[], data: Float32Array) => m.set(name, { shape, data });
  put('model.embed_tokens.weight', [40, 32], raw.emb);
  put('model.norm.weight', [32], raw.final);
  put('lm_head.weight', [40, 32], raw.head);
  raw.layers.forEach((l, i) => {
    const p = `model.layers.${i}.`;
    put(`${p}input_layernorm.weight`, [32], l.an);
    put(`${p}post_attention_layernorm.weight`, [32], l.fn);
    put(`${p}self_attn.q_proj.weight`, [32, 32], l.wq);
    put(`${p}self_attn.k_proj.weight`, [16, 32], l.wk);
    put(`${p}self_attn.v_proj.weight`, [16, 32], l.wv);
    put(`${p}self_attn.o_proj.weight`, [32, 32], l.wo);
    if (l.moe) {  // Mixtral: block_sparse_moe.gate (the router) and experts.E.w1 / w2 / w3
      put(`${p}block_sparse_moe.gate.weight`, [l.moe.experts.length, 32], l.moe.router);
      l.moe.experts.forEach((x, e) => {
        put(`${p}block_sparse_moe.experts.${e}.w1.weight`, [48, 32], x.w1);
        put(`${p}block_sparse_moe.experts.${e}.w2.weight`, [32, 48], x.w2);
        put(`${p}block_sparse_moe.experts.${e}.w3.weight`, [48, 32], x.w3);
      });
    } else {
      put(`${p}mlp.gate_proj.weight`, [48, 32], l.w1);
      put(`${p}mlp.down_proj.weight`, [32, 48], l.w2);
      put(`${p}mlp.up_proj.weight`, [48, 32], l.w3);
    }
    if (l.bq) {
      put(`${p}self_attn.q_proj.bias`, [32], l.bq);
      put(`${p}self_attn.k_proj.bias`, [16], l.bk!);
      put(`${p}self_attn.v_proj.bias`, [16], l.bv!);
    }
  });
  return m;
}

test('HF names load into the same model (qwen2-style biases included)', () => {
  const { model, raw } = tinyModel('half', true);
  const weights = loadHfWeights(fakeSource(hfTensors(raw)), model.config, 'mem');
  const tokens = [1, 4, 9, 16, 25, 36];
  const want = new Session(model).forward(tokens, { allLogits: true });
  const got = new Session({ config: model.config, weights }).forward(tokens, { allLogits: true });
  assert.deepEqual([...got], [...want]);
});

test('Mixtral names (router, experts.E.w1/w2/w3) load into the same model; a missing expert or router fails naming it', () => {
  const { model, raw } = tinyModel('half', false, { experts: 3, topK: 2 });
  const weights = loadHfWeights(fakeSource(hfTensors(raw)), model.config, 'mem');
  const tokens = [1, 4, 9, 16, 25, 36];
  const want = new Session(model).forward(tokens, { allLogits: true });
  const got = new Session({ config: model.config, weights }).forward(tokens, { allLogits: true });
  assert.deepEqual([...got], [...want]);
  const t = hfTensors(raw);
  t.delete('model.layers.1.block_sparse_moe.experts.2.w2.weight');
  assert.throws(() => loadHfWeights(fakeSource(t), model.config, 'dir'), /dir: missing tensor model\.layers\.1\.block_sparse_moe\.experts\.2\.w2\.weight/);
  const u = hfTensors(raw);
  u.set('model.layers.0.block_sparse_moe.gate.weight', { shape: [4, 32], data: new Float32Array(128).fill(0.5) });
  assert.throws(() => loadHfWeights(fakeSource(u), model.config, 'dir'), /gate\.weight has shape \[4, 32\], expected \[3, 32\]/);
});

test('missing and mis-shaped tensors fail with one line naming the directory', () => {
  const { model, raw } = tinyModel('half', false);
  const t = hfTensors(raw);
  t.set('model.layers.1.mlp.up_proj.weight', { shape: [32, 48], data: raw.layers[1]!.w3 });
  assert.throws(() => loadHfWeights(fakeSource(t), model.config, 'dir'), /^IntscaleError: dir: tensor model\.layers\.1\.mlp\.up_proj\.weight has shape \[32, 48\], expected \[48, 32\]$/m);
  const u = hfTensors(raw);
  u.delete('lm_head.weight');
  assert.throws(() => loadHfWeights(fakeSource(u), model.config, 'dir'), /dir: missing tensor lm_head\.weight/);
  // a tied model may omit it
  const tied = loadHfWeights(fakeSource(u), { ...model.config, tieEmbeddings: true }, 'dir');
  assert.equal(tied.lmHead.outFeatures, 40);
});
