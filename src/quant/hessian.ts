// Calibration statistics of one linear input: the Gram matrix XᵀX (float64 sum over every
// calibration row), the per-channel mean and max |x| (AWQ, SmoothQuant), and the row count.
// Each chunk's XᵀX is an fp32 product (the WebAssembly SIMD kernel) of ≤ 512 rows, computed in bands
// of 64 output rows up to the diagonal and added into a float64 sum, so fp32 rounding stays per
// chunk; the transpose and the bands run as tasks on the matmul pool's threads (pool-tasks.ts).
import { fail } from '../core/errors.ts';
import { isInHeap } from '../core/matmul.ts';
import { poolThreads, runTasks } from '../core/matmul-pool.ts';
import { TASK_GRAM_BAND, TASK_TRANSPOSE } from '../core/pool-tasks.ts';
import { ptr, releaseScratch, scratchF32 } from '../core/wasm-heap.ts';

/** Rows per fp32 Gram chunk (its rounding error grows with the rows summed in fp32). */
export const GRAM_CHUNK_ROWS = 512;
/** Output rows per matmul band: only the parts of bands on or below the diagonal are computed. */
const BAND = 64;

export class InputStats {
  /** Σ xᵀx [K, K], symmetric */
  readonly gram: Float64Array;
  readonly absSum: Float64Array;
  readonly absMax: Float32Array;
  rows = 0;

  /** withChannels: also the per-channel mean/max |x| (AWQ, SmoothQuant); GPTQ needs only the Gram matrix. */
  constructor(readonly K: number, readonly withGram = true, readonly withChannels = true) {
    this.gram = new Float64Array(withGram ? K * K : 0);
    this.absSum = new Float64Array(withChannels ? K : 0);
    this.absMax = new Float32Array(withChannels ? K : 0);
  }

  /** Add `rows` rows of x [rows, K]. */
  add(x: Float32Array, rows: number): void {
    const K = this.K;
    if (x.length < rows * K) fail('calibration', `input has ${x.length} values, expected ${rows}x${K}`);
    if (this.withChannels) {
      for (let r = 0; r < rows; r++)
        for (let k = 0; k < K; k++) {
          const a = Math.abs(x[r * K + k]!);
          this.absSum[k]! += a;
          if (a > this.absMax[k]!) this.absMax[k] = a;
        }
    }
    this.rows += rows;
    if (!this.withGram || rows === 0) return;
    // the float64 sum of this call's chunks lives in the heap, where the pool's threads add their bands
    const slot = scratchF32('gram.acc', 2 * K * K);
    const acc = new Float64Array(slot.buffer, slot.byteOffset, K * K);
    acc.fill(0);
    for (let r0 = 0; r0 < rows; r0 += GRAM_CHUNK_ROWS) this.addGram(x, r0, Math.min(rows, r0 + GRAM_CHUNK_ROWS), acc);
    for (let i = 0; i < K; i++) for (let j = 0; j <= i; j++) this.gram[i * K + j]! += acc[i * K + j]!;
    releaseScratch('gram.acc'); // K×K float64: not kept while the factorizations need theirs (linalg.ts)
  }

  private addGram(x: Float32Array, r0: number, r1: number, acc: Float64Array): void {
    const K = this.K, M = r1 - r0;
    const chunk = x.subarray(r0 * K, r1 * K);
    const src = isInHeap(chunk) ? chunk : scratchF32('gram.x', M * K);
    if (src !== chunk) src.set(chunk);
    const xt = scratchF32('gram.xt', K * M); // xᵀ [K, M]
    runTasks(TASK_TRANSPOSE, [ptr(src), M, K, ptr(xt)], K, 16);
    const per = BAND * K, blocks = scratchF32('gram.blocks', per * poolThreads());
    runTasks(TASK_GRAM_BAND, [ptr(xt), M, K, ptr(acc), BAND, ptr(blocks), per * 4], Math.ceil(K / BAND), 1);
  }

  /** GPTQ's Hessian 2·XᵀX/n as a full symmetric [K, K] matrix. */
  hessian(): Float64Array {
    if (!this.withGram) fail('calibration', 'statistics were collected without the Gram matrix');
    if (this.rows === 0) fail('calibration', 'no calibration rows');
    const K = this.K, h = new Float64Array(K * K), f = 2 / this.rows;
    for (let k = 0; k < K; k++) if (!Number.isFinite(this.gram[k * K + k]!)) fail('calibration', `non-finite activations in input channel ${k}`);
    for (let i = 0; i < K; i++)
      for (let j = 0; j <= i; j++) { const v = this.gram[i * K + j]! * f; h[i * K + j] = v; h[j * K + i] = v; }
    return h;
  }

  /** mean |x| per channel */
  absMean(): Float64Array {
    if (!this.withChannels) fail('calibration', 'statistics were collected without per-channel magnitudes');
    return Float64Array.from(this.absSum, (v) => v / Math.max(1, this.rows));
  }
}

/** tr(ΔW·H·ΔWᵀ) = Σ_n Δw_n H Δw_nᵀ for ΔW [N, K] (float64): the output error of ΔW on the calibration inputs (for H = XᵀX). */
export function hessianError(dw: Float64Array | Float32Array, N: number, K: number, h: Float64Array): number {
  let total = 0;
  const t = new Float64Array(K);
  for (let n = 0; n < N; n++) {
    const o = n * K;
    t.fill(0);
    for (let i = 0; i < K; i++) {
      const d = dw[o + i]!;
      if (d === 0) continue;
      const hi = i * K;
      for (let j = 0; j < K; j++) t[j]! += d * h[hi + j]!;
    }
    for (let j = 0; j < K; j++) total += t[j]! * dw[o + j]!;
  }
  return total;
}
