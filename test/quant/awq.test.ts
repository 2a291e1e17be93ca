// AWQ's scale and clip searches and SmoothQuant's scales on small synthetic layers: the searches
// never lose to RTN on their own objective (α = 0 and r = 1 are in the grids), a loud input channel
// gets protected (s > 1), the chosen objective matches an independent float64 recomputation, and
// SmoothQuant's formula against a direct evaluation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { heapFree } from '../../src/core/matmul.ts';
import { Rng } from '../../src/core/rng.ts';
import { awqClipQuantize, awqSearchScales } from '../../src/quant/awq.ts';
import { hessianError, InputStats } from '../../src/quant/hessian.ts';
import { smoothScales } from '../../src/quant/smooth.ts';
import { dequantize, quantizeRtn } from '../../src/quant/rtn.ts';
import { randomActivations, randomWeights } from './helpers.ts';

/** fp32-matmul objective vs float64 recomputation, relative. */
const OBJECTIVE_TOL = 1e-4;

function stats(x: Float32Array, rows: number, K: number): InputStats {
  const s = new InputStats(K);
  s.add(x, rows);
  return s;
}

test('AWQ scale search: no worse than RTN, protects loud channels, objective matches float64', () => {
  const rng = new Rng(7001);
  const N = 48, K = 128, rows = 512;
  const w = randomWeights(rng, N, K, 0.05), x = randomActivations(rng, rows, K); // every 17th channel ×20
  const st = stats(x, rows, K), h = st.hessian(), hF32 = st.hessianF32();
  const r = awqSearchScales([{ w, N }], K, hF32, st.absMean(), 32);
  heapFree(hF32);
  assert.ok(r.loss <= r.lossRtn, `${r.loss} vs ${r.lossRtn}`);
  assert.ok(r.alpha > 0, 'outlier channels make a nonzero α pay off');
  let loud = 0, quiet = 0;
  for (let k = 0; k < K; k++) (k % 17 === 0 ? (loud += r.scales[k]!) : (quiet += r.scales[k]!));
  assert.ok(loud / Math.ceil(K / 17) > quiet / (K - Math.ceil(K / 17)), 'loud channels get larger s');
  // the reported loss, recomputed in float64 from the scaled-and-quantized weights
  const ws = Float32Array.from(w, (v, i) => v * r.scales[i % K]!);
  const dq = dequantize(quantizeRtn(ws, N, K, { group: 32 }));
  const dw = Float64Array.from(dq, (v, i) => v / r.scales[i % K]! - w[i]!);
  const ref = hessianError(dw, N, K, h);
  assert.ok(Math.abs(ref - r.loss) <= OBJECTIVE_TOL * ref, `${r.loss} vs ${ref}`);
});

test('AWQ clip search: Hessian-weighted error per layer no worse than RTN, spec grid kept', () => {
  const rng = new Rng(7002);
  const N = 32, K = 128, rows = 400;
  const w = randomWeights(rng, N, K, 0.05), x = randomActivations(rng, rows, K);
  const st = stats(x, rows, K), h = st.hessian();
  const rtn = quantizeRtn(w, N, K, { group: 64 });
  const clip = awqClipQuantize(w, N, K, st.hessianBlocksF32(64), 64);
  const err = (qw: typeof rtn) => hessianError(Float64Array.from(dequantize(qw), (v, i) => v - w[i]!), N, K, h);
  assert.ok(err(clip) <= err(rtn) * (1 + 1e-9), `${err(clip)} vs ${err(rtn)}`);
  for (const v of clip.q) assert.ok(v >= -7 && v <= 7);
  for (let i = 0; i < clip.scales.length; i++) assert.ok(clip.scales[i]! <= rtn.scales[i]!, 'clipping only shrinks absmax');
});

test('SmoothQuant scales: max|x|^α / max|w|^(1−α); degenerate channels keep 1', () => {
  const act = Float32Array.from([4, 0, 1, 9]);
  const w = Float32Array.from([0.5, 1, 0, -2, /* row 2 */ -1, 0.25, 0, 0.5]);
  const s = smoothScales(act, [{ w, N: 2 }], 4, 0.5);
  assert.ok(Math.abs(s[0]! - Math.sqrt(4) / Math.sqrt(1)) < 1e-6);
  assert.equal(s[1], 1); // no activation
  assert.equal(s[2], 1); // no weight
  assert.ok(Math.abs(s[3]! - Math.sqrt(9) / Math.sqrt(2)) < 1e-6);
  assert.throws(() => smoothScales(act, [{ w, N: 2 }], 4, 1.5), /--smooth: alpha must be in \[0, 1\]/);
});
