// Dense fp32 matrix multiply for the CPU engine and the quantization reference paths:
// y[M, N] = x[M, K] · wᵀ with w [N, K] row-major (the Hugging Face linear layout).
// WebAssembly SIMD kernel (src/core/wasm/matmul.wat), run across all cores by worker threads over
// shared memory (src/core/matmul-pool.ts). Arrays outside the shared heap are copied in per call;
// put long-lived weights there once with `toHeap` (src/core/wasm-heap.ts) to skip the copy.
import { fail } from './errors.ts';
import { runMatmul } from './matmul-pool.ts';
import { isInHeap, ptr, scratchF32 } from './wasm-heap.ts';

export { toHeap, heapF32, heapFree, isInHeap } from './wasm-heap.ts';

/**
 * y = x · wᵀ: x [M, K], w [N, K], both row-major; returns y [M, N] (into `out` when given).
 * Accumulates in fp32, four partial sums per output (SIMD lanes) added at the end.
 */
export function matmulF32(x: Float32Array, M: number, K: number, w: Float32Array, N: number,
                          out?: Float32Array): Float32Array {
  if (!(M >= 1 && K >= 1 && N >= 1 && Number.isInteger(M) && Number.isInteger(K) && Number.isInteger(N)))
    fail('matmulF32', `bad shape M=${M} K=${K} N=${N}`);
  if (x.length < M * K) fail('matmulF32', `x has ${x.length} floats, needs M·K = ${M * K}`);
  if (w.length < N * K) fail('matmulF32', `w has ${w.length} floats, needs N·K = ${N * K}`);
  if (out && out.length < M * N) fail('matmulF32', `out has ${out.length} floats, needs M·N = ${M * N}`);
  const hx = inHeapOrCopy(x, M * K, 'matmul.x');
  const hw = inHeapOrCopy(w, N * K, 'matmul.w');
  const y = out && isInHeap(out) ? out : scratchF32('matmul.y', M * N);
  runMatmul(ptr(hx), K * 4, ptr(hw), K * 4, ptr(y), N * 4, M, N, K);
  if (y === out) return out;
  const result = out ?? new Float32Array(M * N);
  result.set(y.subarray(0, M * N));
  return result;
}

/**
 * Strided form over heap arrays only (attention over a KV cache): y[m, n] = Σ_k x[m·ldx + k]·w[n·ldw + k],
 * written to y[m·ldy + n]. Strides in floats. All three arrays must live in the shared heap.
 */
export function matmulStridedHeap(x: Float32Array, ldx: number, w: Float32Array, ldw: number,
                                  y: Float32Array, ldy: number, M: number, N: number, K: number): void {
  if (!isInHeap(x) || !isInHeap(w) || !isInHeap(y)) fail('matmulStridedHeap', 'arrays must live in the shared heap');
  if (x.length < (M - 1) * ldx + K || w.length < (N - 1) * ldw + K || y.length < (M - 1) * ldy + N)
    fail('matmulStridedHeap', `arrays too short for M=${M} N=${N} K=${K}`);
  runMatmul(ptr(x), ldx * 4, ptr(w), ldw * 4, ptr(y), ldy * 4, M, N, K);
}

function inHeapOrCopy(a: Float32Array, n: number, slot: string): Float32Array {
  if (isInHeap(a)) return a;
  const s = scratchF32(slot, n);
  s.set(a.length === n ? a : a.subarray(0, n));
  return s;
}
