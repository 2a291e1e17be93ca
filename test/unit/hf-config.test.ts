// config.json normalization: every supported architecture and both transformers 4 and 5 RoPE
// spellings, llama3 frequency scaling against an independent computation, and the error lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHfConfig } from '../../src/io/hf-config.ts';
import { ropeInverseFrequencies } from '../../src/model/rope.ts';
import { IntscaleError } from '../../src/core/errors.ts';

const base = {
  architectures: ['LlamaForCausalLM'], hidden_size: 256, intermediate_size: 688, num_hidden_layers: 2,
  num_attention_heads: 8, num_key_value_heads: 2, vocab_size: 1000, max_position_embeddings: 2048,
  rms_norm_eps: 1e-5, bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu',
};

test('llama, transformers 5: rope_parameters, head_dim from hidden/heads', () => {
  const c = parseHfConfig({ ...base, rope_parameters: { rope_type: 'default', rope_theta: 10000.0 }, tie_word_embeddings: false });
  assert.equal(c.arch, 'llama');
  assert.equal(c.headDim, 32);
  assert.equal(c.nKvHeads, 2);
  assert.equal(c.hiddenDim, 688);
  assert.deepEqual(c.rope, { theta: 10000, layout: 'half' });
  assert.equal(c.tieEmbeddings, false);
  assert.equal(c.qkvBias, false);
  assert.equal(c.bosId, 1);
  assert.equal(c.eosId, 2);
});

test('llama 3.1, transformers 4: rope_theta + rope_scaling type llama3, explicit head_dim, eos list', () => {
  const c = parseHfConfig({
    ...base, head_dim: 64, rope_theta: 500000.0, eos_token_id: [128001, 128008],
    rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  });
  assert.equal(c.headDim, 64);
  assert.equal(c.eosId, 128001);
  assert.deepEqual(c.rope.scaling, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPos: 8192 });
  // independent computation of the llama3 rule (Meta's reference apply_scaling)
  const inv = ropeInverseFrequencies(c.rope, 64);
  for (let i = 0; i < 32; i++) {
    const freq = 1 / Math.pow(500000, (2 * i) / 64);
    const wavelen = (2 * Math.PI) / freq;
    let want: number;
    if (wavelen < 8192 / 4) want = freq;
    else if (wavelen > 8192 / 1) want = freq / 8;
    else {
      const smooth = (8192 / wavelen - 1) / (4 - 1);
      want = (1 - smooth) * freq / 8 + smooth * freq;
    }
    assert.ok(Math.abs(inv[i]! - want) <= 1e-6 * want, `inv_freq[${i}] ${inv[i]} vs ${want}`);
  }
  // the three regimes all occur
  const f0 = 1 / Math.pow(500000, 0), fLast = 1 / Math.pow(500000, 62 / 64);
  assert.equal(inv[0], Math.fround(f0));
  assert.ok(Math.abs(inv[31]! - fLast / 8) < 1e-6 * fLast);
});

test('linear rope scaling (transformers 4 "type") and transformers 5 rope_parameters llama3', () => {
  const lin = parseHfConfig({ ...base, rope_theta: 10000, rope_scaling: { type: 'linear', factor: 4 } });
  assert.deepEqual(lin.rope.scaling, { type: 'linear', factor: 4 });
  const inv = ropeInverseFrequencies(lin.rope, 32);
  assert.ok(Math.abs(inv[3]! - 1 / Math.pow(10000, 6 / 32) / 4) < 1e-9);
  const v5 = parseHfConfig({ ...base, rope_parameters: { rope_type: 'llama3', rope_theta: 500000, factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } });
  assert.equal(v5.rope.theta, 500000);
  assert.equal(v5.rope.scaling?.type, 'llama3');
});

test('mistral (sliding window parsed), qwen2 (q/k/v biases, tied), mixtral (experts)', () => {
  const m = parseHfConfig({ ...base, architectures: ['MistralForCausalLM'], sliding_window: 4096, rope_theta: 1e6 });
  assert.equal(m.arch, 'mistral');
  assert.equal(m.slidingWindow, 4096);
  assert.equal(m.rope.theta, 1e6);
  const q = parseHfConfig({ ...base, architectures: ['Qwen2ForCausalLM'], tie_word_embeddings: true, sliding_window: 32768, use_sliding_window: false });
  assert.equal(q.arch, 'qwen2');
  assert.equal(q.qkvBias, true);
  assert.equal(q.tieEmbeddings, true);
  assert.equal(q.slidingWindow, undefined);
  const x = parseHfConfig({ ...base, architectures: ['MixtralForCausalLM'], num_local_experts: 8, num_experts_per_tok: 2 });
  assert.equal(x.arch, 'mixtral');
  assert.equal(x.nExperts, 8);
  assert.equal(x.nExpertsPerTok, 2);
});

test('bad configs fail with one line naming the file', () => {
  const bad = (json: unknown, re: RegExp) => assert.throws(() => parseHfConfig(json, 'm/config.json'),
    (e: unknown) => e instanceof IntscaleError && re.test(e.message) && e.message.startsWith('m/config.json: '));
  bad({ ...base, architectures: ['GPT2LMHeadModel'] }, /unsupported architecture GPT2LMHeadModel/);
  bad({ ...base, architectures: ['MixtralForCausalLM'], num_local_experts: 2, num_experts_per_tok: 3 }, /num_experts_per_tok 3 exceeds num_local_experts 2/);
  bad({ ...base, architectures: ['MixtralForCausalLM'], num_experts_per_tok: 2 }, /num_local_experts/);
  bad({ ...base, architectures: undefined }, /no "architectures"/);
  bad({ ...base, hidden_size: 'x' }, /"hidden_size" must be a positive integer/);
  bad({ ...base, num_key_value_heads: 3 }, /not a multiple of num_key_value_heads/);
  bad({ ...base, rope_scaling: { type: 'yarn', factor: 4 } }, /rope scaling type "yarn" is not supported/);
  bad({ ...base, hidden_act: 'gelu' }, /hidden_act "gelu"/);
  bad([1, 2], /expected a JSON object/);
});
