// The calibration pipeline: sampling of windows, the layer-by-layer forward against the CPU
// engine, the norm fold of per-channel scales (exact function up to fp32/fp16 rounding), and the
// methods end to end on a small random model with outlier channels (GPTQ and AWQ beat RTN on the
// model's output error on held-out windows). Small shapes: fast.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.ts';
import { roundToF16 } from '../../src/core/dtype.ts';
import type { Model } from '../../src/model/llama.ts';
import { sampleWindows } from '../../src/quant/calib-data.ts';
import { foldIntoNorm, type MethodOptions } from '../../src/quant/calibrate.ts';
import { addRows, attentionRows, calibRope, linearRows, rmsNormRows, swigluRows } from '../../src/quant/layer-forward.ts';
import { isMoeLayer, rawWeightOf } from '../../src/model/weights.ts';
import { smallLlama } from './small-llama.ts';
import { engineLogits, logitError, randomWindows } from './calib-eval.ts';

/** Max |layer-forward logits − engine logits| relative to max |logit| (same fp32 math, other summation order). */
const FORWARD_TOL = 1e-4;
/** Norm fold: |fold − original| relative to max |output| (fp16 rounding of γ' compensated exactly in W). */
const FOLD_TOL = 1e-5;

const smallModel = (seed: number): Model => smallLlama(seed);

/** The layer-forward pieces chained over the whole model: logits [S·T, vocab]. */
function pipelineLogits(model: Model, windows: number[][]): Float32Array {
  const c = model.config, w = model.weights, S = windows.length, T = windows[0]!.length, M = S * T, d = c.dim;
  const qd = c.nHeads * c.headDim, kvd = c.nKvHeads * c.headDim;
  let x: Float32Array = new Float32Array(M * d);
  windows.forEach((ids, s) => ids.forEach((id, t) => x.set(w.embedding.subarray(id * d, (id + 1) * d), (s * T + t) * d)));
  const raw = (l: Parameters<typeof rawWeightOf>[0]) => rawWeightOf(l)!;
  for (const L of w.layers) {
    if (isMoeLayer(L)) assert.fail('a dense MLP');
    const h = rmsNormRows(x, L.attnNorm, M, d, c.normEps);
    const att = attentionRows(linearRows(h, M, d, raw(L.wq), qd), linearRows(h, M, d, raw(L.wk), kvd), linearRows(h, M, d, raw(L.wv), kvd), S, T, c, calibRope(c, T));
    x = addRows(x, linearRows(att, M, qd, raw(L.wo), d));
    const h2 = rmsNormRows(x, L.ffnNorm, M, d, c.normEps);
    x = addRows(x, linearRows(swigluRows(linearRows(h2, M, d, raw(L.w1), c.hiddenDim), linearRows(h2, M, d, raw(L.w3), c.hiddenDim)), M, c.hiddenDim, raw(L.w2), d));
  }
  return linearRows(rmsNormRows(x, w.finalNorm, M, d, c.normEps), M, d, raw(w.lmHead), c.vocabSize);
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i]! - b[i]!)); m = Math.max(m, Math.abs(b[i]!)); }
  return d / m;
}

test('calibration windows: seeded, BOS first, contiguous slices of the text; too short a text fails', () => {
  const ids = Array.from({ length: 1000 }, (_, i) => 10 + i);
  const a = sampleWindows(ids, 5, 64, 7, 1), b = sampleWindows(ids, 5, 64, 7, 1), c = sampleWindows(ids, 5, 64, 8, 1);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  for (const w of a) {
    assert.equal(w.length, 64);
    assert.equal(w[0], 1);
    for (let t = 2; t < 64; t++) assert.equal(w[t], w[t - 1]! + 1);
  }
  assert.throws(() => sampleWindows(ids.slice(0, 10), 2, 64, 0, 1, 'x.txt'), /x\.txt: has 10 tokens/);
  assert.throws(() => sampleWindows(ids, 0, 64, 0, 1), /--calib-samples/);
});

test('layer-by-layer forward equals the CPU engine (two sequences, GQA, RoPE)', () => {
  const model = smallModel(11);
  const windows = randomWindows(new Rng(12), 2, 24, 64);
  const d = maxRelDiff(pipelineLogits(model, windows), engineLogits(model, windows));
  assert.ok(d <= FORWARD_TOL, `max rel diff ${d}`);
});

test('folding per-channel scales into an RMSNorm weight keeps the linear\'s output', () => {
  const rng = new Rng(13);
  const K = 64, N = 16, rows = 8;
  const gamma = Float32Array.from({ length: K }, () => roundToF16(1 + rng.normal() * 0.3));
  const w = rng.normals(N * K, 0.1), x = rng.normals(rows * K, 2);
  const s = Float32Array.from({ length: K }, () => Math.exp(rng.normal()));
  const before = linearRows(rmsNormRows(x, gamma, rows, K, 1e-5), rows, K, w, N);
  const g2 = Float32Array.from(gamma), r = foldIntoNorm(g2, s);
  for (let k = 0; k < K; k++) assert.equal(g2[k], roundToF16(g2[k]!), 'γ\' is fp16-exact');
  const w2 = Float32Array.from(w, (v, i) => v / r[i % K]!);
  const after = linearRows(rmsNormRows(x, g2, rows, K, 1e-5), rows, K, w2, N);
  const d = maxRelDiff(after, before);
  assert.ok(d <= FOLD_TOL, `${d}`);
});

/** Mean squared logit error of a calibrated model (W4A16) against the dense model on held-out windows. */
test('GPTQ, GPTQ --clip, AWQ, AWQ+GPTQ and SmoothQuant+GPTQ beat RTN on held-out output error (g32, small model)', () => {
  const model = smallModel(21);
  const rng = new Rng(22);
  const calib = randomWindows(rng, 16, 32, 64), heldOut = randomWindows(rng, 4, 32, 64);
  const ref = engineLogits(model, heldOut);
  const err = (o: MethodOptions) => logitError(model, o, calib, heldOut, ref, 14);
  const rtn = err({ method: 'rtn', group: 32 });
  const gptq = err({ method: 'gptq', group: 32 });
  const gptqAo = err({ method: 'gptq', group: 32, actOrder: true });
  const awq = err({ method: 'awq', group: 32 });
  const smoothGptq = err({ method: 'gptq', group: 32, smooth: 0.5 });
  const gptqClip = err({ method: 'gptq', group: 32, actOrder: true, clip: true });
  const awqGptq = err({ method: 'gptq', group: 32, actOrder: true, awqScales: true });
  process.stderr.write(`# logit MSE: rtn ${rtn.toExponential(3)} gptq ${gptq.toExponential(3)} gptq-ao ${gptqAo.toExponential(3)} awq ${awq.toExponential(3)} smooth+gptq ${smoothGptq.toExponential(3)} gptq+clip ${gptqClip.toExponential(3)} awq+gptq ${awqGptq.toExponential(3)}\n`);
  for (const [name, e] of [['gptq', gptq], ['gptq act-order', gptqAo], ['awq', awq], ['smooth+gptq', smoothGptq], ['gptq+clip', gptqClip], ['awq+gptq', awqGptq]] as const) assert.ok(e < rtn, `${name} ${e} vs rtn ${rtn}`);
  // the dense model is restored after each evaluation
  assert.ok(maxRelDiff(engineLogits(model, heldOut), ref) === 0);
});
