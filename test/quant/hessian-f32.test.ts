// AWQ's fp32 Hessians read from the Gram accumulator in the heap (hessian.ts hessianF32,
// hessianBlocksF32; hessian-f32.ts) against the earlier path, bit for bit: Float32Array.from of the
// float64 Hessian, after the per-channel scales were applied to the JavaScript copy of the Gram matrix;
// the in-place form (written over the accumulator) as the copy; the diagonal blocks as the full
// matrix's; the heap given back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { heapFree } from '../../src/core/matmul.ts';
import { Rng } from '../../src/core/rng.ts';
import { heapLiveBytes } from '../../src/core/wasm-heap.ts';
import { InputStats } from '../../src/quant/hessian.ts';

const bytes = (a: Float32Array | Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const sameBits = (got: Float32Array | Float64Array, want: Float32Array | Float64Array, what: string) =>
  assert.ok(bytes(got).equals(bytes(want)), `${what}: not bit for bit equal`);

/** The statistics of x, its rows added in two calls (a pending partial chunk). */
function stats(x: Float32Array, rows: number, K: number): InputStats {
  const st = new InputStats(K), half = 300;
  st.add(x, half);
  st.add(x.subarray(half * K), rows - half);
  return st;
}

/** The block [k0, k0+G)² of a full [K, K] matrix, row-major. */
function block(h: Float32Array, K: number, k0: number, G: number): Float32Array {
  return Float32Array.from({ length: G * G }, (_, i) => h[(k0 + Math.floor(i / G)) * K + k0 + (i % G)]!);
}

/** The earlier path: the JavaScript Gram copy scaled in place (every entry), then hessian() in float64. */
function referenceHessian(x: Float32Array, rows: number, K: number, scales: Float32Array[]): Float64Array {
  const st = stats(x, rows, K), g = st.gram;
  for (const r of scales) for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) g[i * K + j]! *= r[i]! * r[j]!;
  return st.hessian();
}

test('fp32 Hessian from the heap Gram matrix (copy, in place, diagonal blocks), scaled or not, equals the float64 path\'s', () => {
  const rng = new Rng(4101);
  for (const [K, G] of [[96, 32], [256, 128]] as const) {
    const rows = 700, x = rng.normals(rows * K, 1);
    for (let r = 0; r < rows; r += 13) x[r * K + 3] = 30 * rng.normal(); // a loud channel
    const r1 = Float32Array.from({ length: K }, () => 0.5 + rng.next()), r2 = Float32Array.from({ length: K }, () => 0.25 + 2 * rng.next());
    for (const scales of [[], [r1], [r1, r2]]) {
      const want = Float32Array.from(referenceHessian(x, rows, K, scales)), what = `K=${K}, ${scales.length} scale(s)`;
      const before = heapLiveBytes();
      const st = stats(x, rows, K);
      for (const r of scales) st.scale(r);
      const copy = st.hessianF32();
      sameBits(copy, want, `${what} copy`);
      heapFree(copy);
      const blocks = st.hessianBlocksF32(G);
      for (let k0 = 0; k0 < K; k0 += G) sameBits(blocks.subarray(k0 * G, (k0 + G) * G), block(want, K, k0, G), `${what} block at ${k0}`);
      assert.throws(() => st.hessianF32(), /consumed/);
      const again = stats(x, rows, K);
      for (const r of scales) again.scale(r);
      const inPlace = again.hessianF32(true);
      sameBits(inPlace, want, `${what} in place`);
      heapFree(inPlace);
      assert.equal(heapLiveBytes(), before, `${what}: accumulators and copies given back`);
    }
  }
});

test('InputStats.scale scales the channel statistics and the Gram matrix kept in the heap as the JavaScript copy was', () => {
  const rng = new Rng(4102), K = 40, rows = 600, x = rng.normals(rows * K, 1);
  const r = Float32Array.from({ length: K }, () => 0.5 + rng.next());
  const ref = stats(x, rows, K), g = ref.gram;
  for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) g[i * K + j]! *= r[i]! * r[j]!;
  for (let k = 0; k < K; k++) { ref.absSum[k]! *= r[k]!; ref.absMax[k]! *= r[k]!; }
  const st = stats(x, rows, K);
  st.scale(r);
  sameBits(st.absSum, ref.absSum, 'absSum');
  sameBits(st.absMax, ref.absMax, 'absMax');
  const taken = st.takeGram(), lower = new Float64Array(K * K);
  for (let i = 0; i < K; i++) lower.set(taken.subarray(i * K, i * K + i + 1), i * K); // the accumulator's upper triangle is not read
  sameBits(lower, g, 'Gram matrix');
  heapFree(taken);
});
