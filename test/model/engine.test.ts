// The CPU engine on a tiny random model (no shared files needed) against an independent float64
// forward written here from the LLaMA equations: GQA, both RoPE layouts, q/k/v biases, chunked
// prefill vs decode; Mixtral's sparse mixture of experts (routing, top-k weights, every expert
// used); plus mapLinears and the refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Session, type Model } from '../../src/model/llama.ts';
import { denseLinear, isMoeLayer, mapLinears, releaseWeights } from '../../src/model/weights.ts';
import { heapLiveBytes } from '../../src/core/wasm-heap.ts';
import type { Linear } from '../../src/model/linear.ts';
import { referenceLogits, tinyModel } from './tiny-model.ts';

const TOL = 2e-4; // absolute on logits of magnitude ~1: fp32 engine vs float64 reference

const TOKENS = [1, 5, 39, 7, 7, 0, 22, 13, 30, 2, 17];

/** `logits` ([T, V]) within TOL of the reference rows. */
function assertNearReference(logits: Float32Array, ref: number[][], what: string): void {
  const V = ref[0]!.length;
  ref.forEach((row, t) => row.forEach((want, i) => assert.ok(Math.abs(logits[t * V + i]! - want) <= TOL, `${what} t=${t} i=${i}: ${logits[t * V + i]} vs ${want}`)));
}

/** A prefill chunk of 4, then one token at a time: each step's logits within TOL of the reference. */
function assertChunkThenDecode(model: Model, ref: number[][]): void {
  const s = new Session(model);
  assertNearReference(s.forward(TOKENS.slice(0, 4)), [ref[3]!], 'chunk of 4');
  for (let t = 4; t < TOKENS.length; t++) assertNearReference(s.forward([TOKENS[t]!]), [ref[t]!], `decode ${t}`);
  assert.equal(s.pos, TOKENS.length);
}

for (const [layout, bias] of [['half', false], ['interleaved', false], ['half', true]] as const) {
  test(`engine vs float64 reference: rope ${layout}${bias ? ', q/k/v biases' : ''}, prefill + decode`, () => {
    const { model, raw } = tinyModel(layout, bias);
    const ref = referenceLogits(raw, TOKENS);
    // one prefill chunk, all logits
    assertNearReference(new Session(model).forward(TOKENS, { allLogits: true }), ref, 'prefill');
    // attention in causal blocks of 3 query rows gives the same logits
    assertNearReference(new Session(model, { attentionBlock: 3 }).forward(TOKENS, { allLogits: true }), ref, 'blocked');
    assertChunkThenDecode(model, ref);
  });
}

// Mixtral: 4 experts / top 2 (its own shape), top 1 (a single expert per row) and every expert per row
for (const moe of [{ experts: 4, topK: 2 }, { experts: 4, topK: 1 }, { experts: 2, topK: 2 }]) {
  test(`mixture of experts (${moe.experts} experts, top ${moe.topK}) vs float64 reference: prefill + decode; several experts run`, () => {
    const { model, raw } = tinyModel('half', false, moe);
    const ref = referenceLogits(raw, TOKENS);
    // rows each expert's gate projection sees, by name (the router is not a projection: not visited)
    const rows = new Map<string, number>();
    mapLinears(model.weights, (name, linear) => name.endsWith('.w1')
      ? { inFeatures: linear.inFeatures, outFeatures: linear.outFeatures, forward: (x, m) => { rows.set(name, (rows.get(name) ?? 0) + m); return linear.forward(x, m); } }
      : linear);
    assertNearReference(new Session(model).forward(TOKENS, { allLogits: true }), ref, 'prefill');
    for (let l = 0; l < 2; l++) {
      const perExpert = Array.from({ length: moe.experts }, (_, e) => rows.get(`model.layers.${l}.block_sparse_moe.experts.${e}.w1`) ?? 0);
      assert.equal(perExpert.reduce((a, b) => a + b, 0), TOKENS.length * moe.topK, `layer ${l}: top-${moe.topK} rows`);
      // several experts really run (the reference's routing is what the logits check holds the engine to)
      assert.ok(perExpert.filter((n) => n > 0).length >= Math.min(moe.experts, 3), `layer ${l}: rows per expert ${perExpert.join(', ')}`);
    }
    assertChunkThenDecode(model, ref);
  });
}

test('mixture of experts: the router decides (a zeroed expert changes exactly the rows routed to it); releaseWeights frees the router', () => {
  const { model } = tinyModel('half', false, { experts: 4, topK: 1 });
  const base = new Session(model).forward(TOKENS, { allLogits: true });
  const layer = model.weights.layers[1]!;
  assert.ok(isMoeLayer(layer));
  // expert 2 of the last layer outputs zeros: rows routed to it change, the others stay bit for bit
  let routed = 0;
  const down = layer.moe.experts[2]!.w2;
  layer.moe.experts[2]!.w2 = { inFeatures: down.inFeatures, outFeatures: down.outFeatures, forward: (_x, m) => { routed += m; return new Float32Array(m * down.outFeatures); } };
  const zeroed = new Session(model).forward(TOKENS, { allLogits: true });
  const V = model.config.vocabSize;
  const changed = TOKENS.map((_, t) => base.subarray(t * V, (t + 1) * V).some((v, i) => !Object.is(v, zeroed[t * V + i]))).filter(Boolean).length;
  assert.ok(routed > 0 && routed < TOKENS.length, `expert 2 took ${routed} of ${TOKENS.length} rows`);
  assert.equal(changed, routed, 'exactly the rows routed to the zeroed expert change');
  layer.moe.experts[2]!.w2 = down;
  releaseWeights(model.weights);
  assert.throws(() => layer.moe.router.forward(new Float32Array(32), 1), /used after releaseWeights/);
});

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

test('the engine refuses positions past the context and tokens outside the vocabulary', () => {
  const { model } = tinyModel('half', false);
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
