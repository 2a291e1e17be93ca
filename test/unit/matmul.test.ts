// matmulF32 (wasm SIMD + worker threads) against a naive float64 reference, over odd shapes that
// exercise every kernel edge (K mod 4, odd M, N mod 4), both single- and multi-threaded paths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matmulF32, matmulStridedHeap } from '../../src/core/matmul.ts';
import { heapF32, heapFree, heapLiveBytes, toHeap } from '../../src/core/wasm-heap.ts';
import { Rng } from '../../src/core/rng.ts';

/** fp32 accumulation error bound per output: a few ulps of Σ|x·w| (K terms, 4-way split sums). */
const REL_TOL = 1e-5;

function reference(x: Float32Array, M: number, K: number, w: Float32Array, N: number): { y: Float64Array; mag: Float64Array } {
  const y = new Float64Array(M * N), mag = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0, a = 0;
      for (let k = 0; k < K; k++) { const p = x[m * K + k]! * w[n * K + k]!; s += p; a += Math.abs(p); }
      y[m * N + n] = s; mag[m * N + n] = a;
    }
  return { y, mag };
}

function check(y: Float32Array, ref: { y: Float64Array; mag: Float64Array }, label: string): void {
  for (let i = 0; i < ref.y.length; i++) {
    const err = Math.abs(y[i]! - ref.y[i]!);
    assert.ok(err <= REL_TOL * ref.mag[i]! + 1e-30, `${label}: output ${i}: ${y[i]} vs ${ref.y[i]} (err ${err}, bound ${REL_TOL * ref.mag[i]!})`);
  }
}

test('matmulF32 matches a float64 reference on edge shapes', () => {
  const rng = new Rng(7);
  const shapes = [[1, 1, 1], [1, 3, 5], [2, 4, 4], [3, 5, 7], [5, 67, 13], [17, 130, 33], [4, 64, 17], [33, 8, 2]];
  for (const [M, K, N] of shapes as [number, number, number][]) {
    const x = rng.normals(M * K), w = rng.normals(N * K);
    check(matmulF32(x, M, K, w, N), reference(x, M, K, w, N), `M=${M} K=${K} N=${N}`);
  }
});

test('matmulF32 large enough to run on the worker threads (columns and rows split)', () => {
  const rng = new Rng(11);
  for (const [M, K, N] of [[96, 260, 190], [1201, 257, 15]] as [number, number, number][]) {
    const x = rng.normals(M * K), w = toHeap(rng.normals(N * K));
    const ref = reference(x, M, K, w, N);
    const out = new Float32Array(M * N);
    const y = matmulF32(x, M, K, w, N, out);
    assert.equal(y, out);
    check(y, ref, `M=${M} K=${K} N=${N}`);
    // twice: the second call reuses the scratch and the woken workers
    check(matmulF32(x, M, K, w, N), ref, `again M=${M} K=${K} N=${N}`);
  }
});

test('matmulStridedHeap reads rows with strides and writes into a strided output', () => {
  const rng = new Rng(3);
  const M = 5, N = 6, K = 9, ldx = 12, ldw = 11, ldy = 8;
  const x = heapF32(M * ldx), w = heapF32(N * ldw), y = heapF32(M * ldy);
  x.set(rng.normals(M * ldx)); w.set(rng.normals(N * ldw)); y.fill(-99);
  matmulStridedHeap(x, ldx, w, ldw, y, ldy, M, N, K);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0, a = 0;
      for (let k = 0; k < K; k++) { s += x[m * ldx + k]! * w[n * ldw + k]!; a += Math.abs(x[m * ldx + k]! * w[n * ldw + k]!); }
      assert.ok(Math.abs(y[m * ldy + n]! - s) <= REL_TOL * a, `(${m},${n})`);
    }
    for (let n = N; n < ldy && m < M - 1; n++) assert.equal(y[m * ldy + n], -99, 'padding untouched');
  }
});

test('matmulF32 rejects arrays shorter than the shape', () => {
  assert.throws(() => matmulF32(new Float32Array(3), 2, 2, new Float32Array(4), 2), /x has 3 floats/);
  assert.throws(() => matmulF32(new Float32Array(4), 2, 2, new Float32Array(4), 0), /bad shape/);
});

test('heap blocks are reused after heapFree (first fit, neighbours merged, top returned)', () => {
  const before = heapLiveBytes();
  // blocks larger than any hole the earlier tests' scratch growth left: they come from the top, in order
  const MB = 1 << 18; // floats (1 MiB)
  const a = heapF32(4 * MB), b = heapF32(4 * MB), c = heapF32(10);
  assert.equal(b.byteOffset, a.byteOffset + 16 * MB);
  a.fill(7); b.fill(8);
  heapFree(a);
  heapFree(b);
  const d = heapF32(7 * MB); // only the merged a+b block can hold it
  assert.equal(d.byteOffset, a.byteOffset);
  assert.ok(d.every((v) => v === 0), 'reused memory is zeroed');
  heapFree(c);
  heapFree(d);
  assert.equal(heapLiveBytes(), before);
  const e = heapF32(8 * MB); // the whole region went back to the top: same start again
  assert.equal(e.byteOffset, a.byteOffset);
  heapFree(e);
  assert.throws(() => heapFree(e), /no block starts at byte/);
});
