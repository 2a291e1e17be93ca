// perplexity(): the chunking rule (BOS + ctx-1 ids per chunk, nothing carried, every id scored
// once, --max-tokens) against NLLs computed from the float64 reference forward of a tiny model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { perplexity, negativeLogLikelihood } from '../../src/eval/perplexity.ts';
import { referenceLogits, tinyModel } from './tiny-model.ts';

const REL_TOL = 1e-5; // Σ NLL: fp32 logits vs float64 reference

function referenceNll(ids: number[], ctx: number, bos: number, raw: Parameters<typeof referenceLogits>[0]): number {
  let nll = 0;
  for (let s = 0; s < ids.length; s += ctx - 1) {
    const chunk = ids.slice(s, s + ctx - 1);
    const logits = referenceLogits(raw, [bos, ...chunk]);
    chunk.forEach((id, t) => {
      const row = logits[t]!, mx = Math.max(...row);
      nll += Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0)) + mx - row[id]!;
    });
  }
  return nll;
}

test('perplexity chunks as BOS + (ctx-1) ids and scores each id once', () => {
  const { model, raw } = tinyModel('half', false);
  const ids = [5, 9, 12, 0, 33, 7, 7, 21, 3, 38, 11, 4, 19];
  const progress: number[] = [];
  const r = perplexity(model, ids, { ctx: 5, bosId: 1, onProgress: (n) => progress.push(n) });
  assert.deepEqual(progress, [4, 8, 12, 13]);
  assert.equal(r.tokens, 13);
  const want = referenceNll(ids, 5, 1, raw);
  assert.ok(Math.abs(r.nll - want) <= REL_TOL * want, `${r.nll} vs ${want}`);
  assert.ok(Math.abs(r.ppl - Math.exp(want / 13)) <= 1e-4 * r.ppl);
  // --max-tokens scores a prefix only
  const short = perplexity(model, ids, { ctx: 5, bosId: 1, maxTokens: 6 });
  assert.equal(short.tokens, 6);
  const wantShort = referenceNll(ids.slice(0, 6), 5, 1, raw);
  assert.ok(Math.abs(short.nll - wantShort) <= REL_TOL * wantShort);
});

test('negativeLogLikelihood is a float64 log-softmax', () => {
  const logits = Float32Array.from([1000, 1001, 999]);
  const z = Math.exp(-1) + Math.exp(0) + Math.exp(-2); // shifted by the max, no overflow
  assert.ok(Math.abs(negativeLogLikelihood(logits, 0, 3, 1) - Math.log(z)) < 1e-12);
  assert.ok(Math.abs(negativeLogLikelihood(logits, 0, 3, 0) - (Math.log(z) + 1)) < 1e-12);
  assert.ok(Math.abs(negativeLogLikelihood(logits, 0, 3, 2) - (Math.log(z) + 2)) < 1e-12);
});

test('perplexity rejects a context beyond the model and an empty input', () => {
  const { model } = tinyModel('half', false);
  assert.throws(() => perplexity(model, [1, 2], { ctx: 100 }), /exceeds the model's context/);
  assert.throws(() => perplexity(model, [], { ctx: 5 }), /no tokens/);
});
