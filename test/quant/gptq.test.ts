// GPTQ against independent float64 references: the inverse-Hessian factor against an explicit
// Gauss-Jordan inverse, the blocked lazy-update GPTQ against the unblocked OBS recursion of the
// GPTQ paper (explicit H⁻¹, row/column elimination after each column), and GPTQ's objective
// against RTN's on correlated inputs. Fresh seeded inputs; small synthetic layers (fast).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.ts';
import { inverseCholeskyUpper } from '../../src/quant/linalg.ts';
import { actOrderPermutation, gptqQuantize, prepareHessian } from '../../src/quant/gptq.ts';
import { hessianError, InputStats } from '../../src/quant/hessian.ts';
import { dequantize, quantizeRtn, scaleFromAbsmax } from '../../src/quant/rtn.ts';
import { rintClamp } from '../../src/quant/fp32.ts';
import { randomWeights } from './helpers.ts';

/** |UᵀU − H⁻¹| / max|H⁻¹| allowed (float64, well-conditioned K ≤ 96). */
const FACTOR_TOL = 1e-10;
/** Relative difference allowed between GPTQ's objective and the reference recursion's. */
const OBJECTIVE_TOL = 1e-6;
/** Fraction of int4 values allowed to differ from the reference (rounding ties after fp64 reassociation). */
const Q_MISMATCH_TOL = 0.002;

function gaussJordanInverse(a: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a), inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]!) > Math.abs(m[p * n + c]!)) p = r;
    for (let k = 0; k < n; k++) {
      [m[c * n + k], m[p * n + k]] = [m[p * n + k]!, m[c * n + k]!];
      [inv[c * n + k], inv[p * n + k]] = [inv[p * n + k]!, inv[c * n + k]!];
    }
    const d = m[c * n + c]!;
    for (let k = 0; k < n; k++) { m[c * n + k]! /= d; inv[c * n + k]! /= d; }
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r * n + c]!;
      if (f === 0) continue;
      for (let k = 0; k < n; k++) { m[r * n + k]! -= f * m[c * n + k]!; inv[r * n + k]! -= f * inv[c * n + k]!; }
    }
  }
  return inv;
}

/** Correlated activations: x = z·A with a random mixing matrix plus a few loud channels. */
function correlatedInputs(rng: Rng, rows: number, K: number): Float32Array {
  const r = Math.max(4, K >> 2);
  const a = rng.normals(r * K, 1), z = rng.normals(rows * r, 1);
  const x = new Float32Array(rows * K);
  for (let t = 0; t < rows; t++)
    for (let k = 0; k < K; k++) {
      let s = 0.1 * rng.normal();
      for (let j = 0; j < r; j++) s += z[t * r + j]! * a[j * K + k]!;
      x[t * K + k] = k % 11 === 0 ? 6 * s : s;
    }
  return x;
}

function hessianOf(x: Float32Array, rows: number, K: number): Float64Array {
  const st = new InputStats(K);
  st.add(x, rows);
  return st.hessian();
}

/** The GPTQ paper's recursion, unblocked, with an explicit inverse Hessian (float64). */
function referenceGptq(w: Float32Array, N: number, K: number, h: Float64Array, G: number, actOrder: boolean, percdamp: number) {
  const perm = actOrder ? actOrderPermutation(h, K) : Int32Array.from({ length: K }, (_, i) => i);
  const hp = new Float64Array(K * K);
  for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) hp[i * K + j] = h[perm[i]! * K + perm[j]!]!;
  let mean = 0;
  for (let i = 0; i < K; i++) mean += hp[i * K + i]!;
  for (let i = 0; i < K; i++) hp[i * K + i]! += (percdamp * mean) / K;
  const groups = K / G, scales = new Float32Array(N * groups), q = new Int8Array(N * K);
  if (actOrder) {
    const r = quantizeRtn(w, N, K, { group: G === K ? -1 : G });
    scales.set(r.scales);
  }
  for (let n = 0; n < N; n++) {
    const wr = Float64Array.from({ length: K }, (_, i) => w[n * K + perm[i]!]!);
    const hinv = gaussJordanInverse(hp, K);
    for (let i = 0; i < K; i++) {
      const col = perm[i]!, g = Math.floor(col / G);
      if (!actOrder && col % G === 0) {
        let m = 0;
        for (let k = i; k < i + G; k++) m = Math.max(m, Math.abs(Math.fround(wr[k]!)));
        scales[n * groups + g] = scaleFromAbsmax(m);
      }
      const s = scales[n * groups + g]!;
      const qi = s === 0 ? 0 : rintClamp(Math.fround(Math.fround(wr[i]!) / s), -7, 7);
      q[n * K + col] = qi;
      const d = hinv[i * K + i]!, e = (wr[i]! - qi * s) / d;
      for (let j = i + 1; j < K; j++) wr[j]! -= e * hinv[i * K + j]!;
      // eliminate row/column i from the inverse (the remaining columns' inverse Hessian)
      for (let a = i + 1; a < K; a++) {
        const f = hinv[a * K + i]! / d;
        for (let b = i + 1; b < K; b++) hinv[a * K + b]! -= f * hinv[i * K + b]!;
      }
    }
  }
  return { outFeatures: N, inFeatures: K, groupSize: G, q, scales };
}

function objective(w: Float32Array, deq: Float32Array, N: number, K: number, h: Float64Array): number {
  return hessianError(Float64Array.from(deq, (v, i) => v - w[i]!), N, K, h);
}

test('inverse-Hessian factor: UᵀU = H⁻¹ with U upper triangular', () => {
  const rng = new Rng(1001);
  for (const K of [1, 7, 96]) {
    const x = correlatedInputs(rng, 4 * K + 8, K);
    const h = hessianOf(x, 4 * K + 8, K);
    for (let i = 0; i < K; i++) h[i * K + i]! += 0.01;
    const u = inverseCholeskyUpper(h, K), inv = gaussJordanInverse(h, K);
    let maxInv = 0, maxDiff = 0;
    for (let i = 0; i < K; i++)
      for (let j = 0; j < K; j++) {
        if (j < i) assert.equal(u[i * K + j], 0);
        let s = 0;
        for (let k = 0; k < K; k++) s += u[k * K + i]! * u[k * K + j]!;
        maxInv = Math.max(maxInv, Math.abs(inv[i * K + j]!));
        maxDiff = Math.max(maxDiff, Math.abs(s - inv[i * K + j]!));
      }
    assert.ok(maxDiff <= FACTOR_TOL * maxInv, `K=${K}: ${maxDiff} vs ${maxInv}`);
  }
});

test('prepareHessian with consume: the same factor, in the caller\'s array, without a copy', () => {
  const rng = new Rng(1003);
  const K = 200; // above the blocked factorization's threshold, so its scratch slots are released and reallocated
  const x = correlatedInputs(rng, 3 * K, K), h = hessianOf(x, 3 * K, K);
  for (let k = 0; k < K; k++) h[5 * K + k] = h[k * K + 5] = 0; // a dead input: its fix is written into the consumed array
  for (const actOrder of [false, true]) {
    const copy = prepareHessian(h, K, { actOrder }), mine = Float64Array.from(h);
    const consumed = prepareHessian(mine, K, { actOrder, consume: true });
    assert.equal(consumed.h, mine);
    assert.notEqual(copy.h, h);
    assert.deepEqual(consumed.u, copy.u);
    assert.deepEqual(consumed.h, copy.h);
    assert.deepEqual(consumed.perm, copy.perm);
  }
});

test('non-positive-definite Hessian: one-line error', () => {
  const h = Float64Array.from([1, 2, 2, 1]);
  assert.throws(() => inverseCholeskyUpper(h, 2, 'layer.x'), /layer\.x: matrix is not positive definite/);
});

for (const [actOrder, G, B] of [[false, 32, 16], [true, 32, 16], [false, 64, 128], [true, -1, 24]] as const) {
  test(`GPTQ (act-order ${actOrder}, g${G}, block ${B}) equals the unblocked reference recursion`, () => {
    const rng = new Rng(2000 + G + B + (actOrder ? 1 : 0));
    const N = 12, K = 128, rows = 600;
    const w = randomWeights(rng, N, K, 0.05);
    const h = hessianOf(correlatedInputs(rng, rows, K), rows, K);
    const got = gptqQuantize(w, N, K, prepareHessian(h, K, { actOrder }), { group: G, blockSize: B, actOrder }).qw;
    const ref = referenceGptq(w, N, K, h, G === -1 ? K : G, actOrder, 0.01);
    let diff = 0;
    for (let i = 0; i < N * K; i++) if (got.q[i] !== ref.q[i]) diff++;
    assert.ok(diff <= Q_MISMATCH_TOL * N * K, `${diff} of ${N * K} int4 values differ`);
    const a = objective(w, dequantize(got), N, K, h), b = objective(w, dequantize(ref), N, K, h);
    if (diff === 0) assert.ok(Math.abs(a - b) <= OBJECTIVE_TOL * b, `objective ${a} vs ${b}`);
    for (const v of got.q) assert.ok(v >= -7 && v <= 7);
  });
}

test('GPTQ beats RTN on correlated inputs (output error tr(ΔW H ΔWᵀ)), with and without act-order', () => {
  const rng = new Rng(3003);
  const N = 32, K = 256, rows = 1024;
  const w = randomWeights(rng, N, K, 0.05);
  const h = hessianOf(correlatedInputs(rng, rows, K), rows, K);
  const rtn = objective(w, dequantize(quantizeRtn(w, N, K, { group: 64 })), N, K, h);
  for (const actOrder of [false, true]) {
    const g = objective(w, dequantize(gptqQuantize(w, N, K, prepareHessian(h, K, { actOrder }), { group: 64, actOrder }).qw), N, K, h);
    assert.ok(g < 0.7 * rtn, `act-order ${actOrder}: GPTQ ${g} vs RTN ${rtn}`);
  }
});

test('GPTQ with a diagonal Hessian is RTN bit for bit; act-order static groups keep RTN\'s scales', () => {
  const rng = new Rng(4004);
  const N = 8, K = 128;
  const w = randomWeights(rng, N, K, 0.05);
  const h = new Float64Array(K * K);
  for (let k = 0; k < K; k++) h[k * K + k] = 0.5 + rng.next();
  const rtn = quantizeRtn(w, N, K, { group: 32 });
  const g = gptqQuantize(w, N, K, prepareHessian(h, K), { group: 32 }).qw;
  assert.deepEqual(g.q, rtn.q);
  assert.deepEqual(g.scales, rtn.scales);
  const corr = hessianOf(correlatedInputs(rng, 400, K), 400, K);
  const ao = gptqQuantize(w, N, K, prepareHessian(corr, K, { actOrder: true }), { group: 32, actOrder: true }).qw;
  assert.deepEqual(ao.scales, rtn.scales, 'static groups: the scales of the original weights');
});

test('dead inputs (never activated) get q = 0 and do not break the factorization', () => {
  const rng = new Rng(5005);
  const N = 4, K = 64, rows = 200;
  const x = correlatedInputs(rng, rows, K);
  for (let t = 0; t < rows; t++) x[t * K + 5] = 0;
  const h = hessianOf(x, rows, K);
  const w = randomWeights(rng, N, K, 0.05);
  const g = gptqQuantize(w, N, K, prepareHessian(h, K), { group: 32 }).qw;
  for (let n = 0; n < N; n++) assert.equal(g.q[n * K + 5], 0);
});

test('Gram matrix of the banded fp32 matmul equals a float64 loop', () => {
  const rng = new Rng(6006);
  const K = 300, rows = 700; // several bands and chunks, K not a multiple of the band
  const x = rng.normals(rows * K);
  const st = new InputStats(K);
  st.add(x, rows);
  const h = st.hessian();
  for (const [i, j] of [[0, 0], [299, 0], [150, 299], [257, 256], [13, 200]] as const) {
    let s = 0;
    for (let t = 0; t < rows; t++) s += x[t * K + i]! * x[t * K + j]!;
    s *= 2 / rows;
    assert.ok(Math.abs(h[i * K + j]! - s) <= 1e-5 * Math.max(1, Math.abs(s)), `(${i},${j}) ${h[i * K + j]} vs ${s}`);
  }
});
