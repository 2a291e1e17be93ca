// The blocked inverse-Cholesky factor (float64 GEMM tasks on the matmul pool, linalg.ts) against
// the unblocked loops and against UᵀU·H = I, on seeded random SPD matrices whose sizes are not
// multiples of the block (64), and its one-line error on an indefinite matrix. Also the float64
// GEMM kernel mm64 (y −= x·wᵀ) against a plain loop, on odd shapes and strides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.ts';
import { invertUpper, inverseCholeskyUpperBlocked, upperCholeskyUL } from '../../src/quant/linalg.ts';
import { kernel, ptr, scratchF64 } from '../../src/core/wasm-heap.ts';

/** Max |blocked − unblocked| / max |U| allowed (float64, summation order only; cond ≲ 1e4). */
const BLOCKED_TOL = 1e-11;
/** Max |UᵀU·H − I| allowed. */
const IDENTITY_TOL = 1e-9;
/** mm64 against a float64 loop: relative to Σ|x·w| (reassociation only). */
const MM64_TOL = 1e-14;

function randomSpd(rng: Rng, n: number): Float64Array {
  const r = n + 16, z = rng.normals(r * n, 1), h = new Float64Array(n * n);
  for (let t = 0; t < r; t++)
    for (let i = 0; i < n; i++) {
      const zi = z[t * n + i]! * (i % 7 === 0 ? 3 : 1);
      for (let j = 0; j < n; j++) h[i * n + j]! += zi * z[t * n + j]! * (j % 7 === 0 ? 3 : 1);
    }
  for (let i = 0; i < n; i++) h[i * n + i]! += 0.01 * r;
  return h;
}

for (const n of [200, 333]) {
  test(`blocked inverse-Cholesky factor (n = ${n}) equals the unblocked one and inverts H`, () => {
    const rng = new Rng(7000 + n);
    const h = randomSpd(rng, n);
    const got = inverseCholeskyUpperBlocked(h, n, 'test');
    const ref = invertUpper(upperCholeskyUL(h, n), n);
    let maxU = 0, maxDiff = 0;
    for (let i = 0; i < n * n; i++) { maxU = Math.max(maxU, Math.abs(ref[i]!)); maxDiff = Math.max(maxDiff, Math.abs(got[i]! - ref[i]!)); }
    assert.ok(maxDiff <= BLOCKED_TOL * maxU, `${maxDiff} vs ${maxU}`);
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) assert.equal(got[i * n + j], 0);
    // (UᵀU)·H = I, rows sampled
    for (const r of [0, 1, 63, 64, n - 1]) {
      const row = new Float64Array(n); // row r of UᵀU
      for (let k = 0; k <= r; k++) { const ukr = got[k * n + r]!; for (let j = k; j < n; j++) row[j]! += ukr * got[k * n + j]!; }
      for (let c = 0; c < n; c++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += row[j]! * h[j * n + c]!;
        assert.ok(Math.abs(s - (r === c ? 1 : 0)) <= IDENTITY_TOL, `row ${r} col ${c}: ${s}`);
      }
    }
  });
}

test('blocked factor: an indefinite matrix is a one-line error naming the input', () => {
  const n = 200, h = new Float64Array(n * n);
  for (let i = 0; i < n; i++) h[i * n + i] = i === 5 ? -1 : 1;
  assert.throws(() => inverseCholeskyUpperBlocked(h, n, 'layer.q'), /^IntscaleError: layer\.q: matrix is not positive definite \(pivot 5/);
});

test('mm64: y −= x·wᵀ in float64 equals a plain loop (odd M, N, K, row strides)', () => {
  const rng = new Rng(7100);
  for (const [M, N, K] of [[1, 1, 1], [3, 5, 7], [8, 13, 64], [7, 4, 33]] as const) {
    const ldx = K + 3, ldw = K + 1, ldy = N + 2;
    const x = scratchF64('t.x', M * ldx), w = scratchF64('t.w', N * ldw), y = scratchF64('t.y', M * ldy);
    for (let i = 0; i < x.length; i++) x[i] = rng.normal();
    for (let i = 0; i < w.length; i++) w[i] = rng.normal();
    for (let i = 0; i < y.length; i++) y[i] = rng.normal();
    const y0 = Float64Array.from(y);
    kernel.mm64(ptr(x), ldx * 8, ptr(w), ldw * 8, ptr(y), ldy * 8, 0, M, 0, N, K);
    for (let m = 0; m < M; m++)
      for (let c = 0; c < ldy; c++) {
        if (c >= N) { assert.equal(y[m * ldy + c], y0[m * ldy + c], 'outside the columns: untouched'); continue; }
        let s = 0, mag = 0;
        for (let k = 0; k < K; k++) { s += x[m * ldx + k]! * w[c * ldw + k]!; mag += Math.abs(x[m * ldx + k]! * w[c * ldw + k]!); }
        assert.ok(Math.abs(y[m * ldy + c]! - (y0[m * ldy + c]! - s)) <= MM64_TOL * (mag + Math.abs(y0[m * ldy + c]!)), `${M}x${N}x${K} (${m},${c})`);
      }
  }
});
