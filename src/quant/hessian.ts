// Calibration statistics of one linear input: the Gram matrix XᵀX (float64 sum over every
// calibration row), the per-channel mean and max |x| (AWQ, SmoothQuant), and the row count.
// Each chunk's XᵀX is one fp32 matmul (the WebAssembly SIMD kernel, worker threads) of ≤ 512 rows,
// only its lower band triangle computed, and added into the float64 sum, so fp32 rounding stays per chunk.
import { fail } from '../core/errors.ts';
import { matmulF32 } from '../core/matmul.ts';

/** Rows per fp32 Gram chunk (its rounding error grows with the rows summed in fp32). */
export const GRAM_CHUNK_ROWS = 512;
/** Output rows per matmul band: only bands on or below the diagonal are computed. */
const BAND = 256;

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
    if (!this.withGram) return;
    for (let r0 = 0; r0 < rows; r0 += GRAM_CHUNK_ROWS) this.addGram(x, r0, Math.min(rows, r0 + GRAM_CHUNK_ROWS));
  }

  private addGram(x: Float32Array, r0: number, r1: number): void {
    const K = this.K, M = r1 - r0;
    const xt = new Float32Array(K * M); // xᵀ [K, M]
    for (let r = 0; r < M; r++) for (let k = 0; k < K; k++) xt[k * M + r] = x[(r0 + r) * K + k]!;
    for (let b0 = 0; b0 < K; b0 += BAND) {
      const b1 = Math.min(K, b0 + BAND);
      // rows b0..b1 of XᵀX, columns 0..b1 (the part on or below the diagonal)
      const block = matmulF32(xt.subarray(b0 * M, b1 * M), b1 - b0, M, xt, b1);
      for (let i = b0; i < b1; i++) {
        const o = (i - b0) * b1;
        for (let j = 0; j <= i; j++) this.gram[i * K + j]! += block[o + j]!;
      }
    }
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
