// The CPU engine on a tiny random model (no shared files needed) against an independent float64
// forward written here from the LLaMA equations: GQA, both RoPE layouts, q/k/v biases, chunked
// prefill vs decode; plus mapLinears and the Mixtral refusal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Session } from '../../src/model/llama.ts';
import { denseLinear, mapLinears, releaseWeights } from '../../src/model/weights.ts';
import { heapLiveBytes } from '../../src/core/wasm-heap.ts';
import type { Linear } from '../../src/model/linear.ts';
import { referenceLogits, tinyModel } from './tiny-model.ts';

const TOL = 2e-4; // absolute on logits of magnitude ~1: fp32 engine vs float64 reference

const TOKENS = [1, 5, 39, 7, 7, 0, 22, 13, 30, 2, 17];

for (const [layout, bias] of [['half', false], ['interleaved', false], ['half', true]] as const) {
  test(`engine vs float64 reference: rope ${layout}${bias ? ', q/k/v biases' : ''}, prefill + decode`, () => {
    const { model, raw } = tinyModel(layout, bias);
    const ref = referenceLogits(raw, TOKENS);
    const V = model.config.vocabSize;
    // one prefill chunk, all logits
    const all = new Session(model).forward(TOKENS, { allLogits: true });
    ref.forEach((row, t) => row.forEach((want, i) => assert.ok(Math.abs(all[t * V + i]! - want) <= TOL, `prefill t=${t} i=${i}: ${all[t * V + i]} vs ${want}`)));
    // attention in causal blocks of 3 query rows gives the same logits
    const blocked = new Session(model, { attentionBlock: 3 }).forward(TOKENS, { allLogits: true });
    ref.forEach((row, t) => row.forEach((want, i) => assert.ok(Math.abs(blocked[t * V + i]! - want) <= TOL, `blocked t=${t} i=${i}`)));
    // a chunk of 4, then one token at a time
    const s = new Session(model);
    const first = s.forward(TOKENS.slice(0, 4));
    ref[3]!.forEach((want, i) => assert.ok(Math.abs(first[i]! - want) <= TOL));
    for (let t = 4; t < TOKENS.length; t++) {
      const step = s.forward([TOKENS[t]!]);
      ref[t]!.forEach((want, i) => assert.ok(Math.abs(step[i]! - want) <= TOL, `decode t=${t} i=${i}`));
    }
    assert.equal(s.pos, TOKENS.length);
  });
}

test('mapLinears visits every projection by HF name with its raw weight; replacements are used', () => {
  const { model } = tinyModel('half', false);
  const names: string[] = [];
  let calls = 0;
  mapLinears(model.weights, (name, linear, rawWeight) => {
    names.push(name);
    assert.equal(rawWeight?.length, linear.inFeatures * linear.outFeatures);
    // a wrapper that counts calls and doubles nothing: same outputs
    const wrapped: Linear = { inFeatures: linear.inFeatures, outFeatures: linear.outFeatures, forward: (x, rows) => { calls++; return linear.forward(x, rows); } };
    return wrapped;
  });
  assert.equal(names.length, 14);
  assert.equal(names[0], 'model.layers.0.self_attn.q_proj');
  assert.ok(names.includes('model.layers.1.mlp.down_proj'));
  new Session(model).forward([1, 2, 3]);
  assert.equal(calls, 14);
  assert.throws(() => mapLinears(model.weights, () => denseLinear(new Float32Array(4), 2, 2)), /replacement is 2×2/);
});

test('the engine refuses Mixtral and positions past the context', () => {
  const { model } = tinyModel('half', false);
  assert.throws(() => new Session({ ...model, config: { ...model.config, arch: 'mixtral' } }), /not supported by the CPU engine yet/);
  const s = new Session(model);
  assert.throws(() => s.forward(new Array(25).fill(1)), /exceeds the context of 24/);
  assert.throws(() => s.forward([40]), /outside the vocabulary/);
});

test('dispose() and releaseWeights() give the shared heap back; use afterwards fails', () => {
  const before = heapLiveBytes();
  const { model } = tinyModel('half', false);
  const s = new Session(model);
  s.forward([1, 2]);
  s.dispose();
  assert.throws(() => s.forward([3]), /used after dispose/);
  releaseWeights(model.weights);
  assert.throws(() => model.weights.layers[0]!.wq.forward(new Float32Array(32), 1), /used after releaseWeights/);
  assert.equal(heapLiveBytes(), before);
});
