// The pieces of one decoder layer's forward pass over a stack of calibration sequences (S
// sequences of T positions each, rows stacked [S·T, ·], every sequence starting at position 0),
// for the layer-by-layer calibration pipeline (calibrate.ts). Same math as the CPU engine
// (src/model/llama.ts and src/backends/cpu/ops.ts: RMSNorm — shared —, RoPE, causal GQA attention, SwiGLU), written over plain fp32
// weight arrays so that a stage can run with some linears already quantized (dequantized).
import { fail } from '../core/errors.ts';
import { rmsNorm } from '../backends/cpu/ops.ts';
import { matmulF32 } from '../core/matmul.ts';
import type { ModelConfig } from '../model/config.ts';
import { applyRope, ropeTables, type RopeTables } from '../model/rope.ts';

/** Rows per matmul call (keeps the shared-heap scratch small). */
const ROW_CHUNK = 4096;

/** out[r] = x[r] / sqrt(mean(x[r]²) + eps) · weight: the CPU engine's rmsNorm, into a new array. */
export function rmsNormRows(x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number): Float32Array {
  const out = new Float32Array(rows * dim);
  rmsNorm(out, x, weight, rows, dim, eps);
  return out;
}

/** y[rows, N] = x[rows, K]·Wᵀ (+ bias), W [N, K] fp32, in row chunks. */
export function linearRows(x: Float32Array, rows: number, K: number, w: Float32Array, N: number, bias?: Float32Array): Float32Array {
  if (w.length !== N * K) fail('calibration', `weight has ${w.length} values, expected ${N}x${K}`);
  const y = new Float32Array(rows * N);
  for (let r0 = 0; r0 < rows; r0 += ROW_CHUNK) {
    const m = Math.min(ROW_CHUNK, rows - r0);
    y.set(matmulF32(x.subarray(r0 * K, (r0 + m) * K), m, K, w, N), r0 * N);
  }
  if (bias) for (let r = 0; r < rows; r++) for (let n = 0; n < N; n++) y[r * N + n]! += bias[n]!;
  return y;
}

/** gate ← silu(gate)·up (SwiGLU), in place; returns gate. */
export function swigluRows(gate: Float32Array, up: Float32Array): Float32Array {
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i]!;
    gate[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
  return gate;
}

export function addRows(x: Float32Array, y: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) x[i]! += y[i]!;
  return x;
}

/** RoPE tables for sequences of T positions. */
export function calibRope(c: ModelConfig, T: number): RopeTables {
  return ropeTables(c.rope, c.headDim, T);
}

/**
 * Causal grouped-query attention of S sequences of T positions: q [S·T, nHeads·hd], k and v
 * [S·T, nKv·hd] (q and k are rotated in place). Returns the attention output [S·T, nHeads·hd].
 */
export function attentionRows(q: Float32Array, k: Float32Array, v: Float32Array, S: number, T: number,
                              c: ModelConfig, rope: RopeTables): Float32Array {
  const hd = c.headDim, qDim = c.nHeads * hd, kvDim = c.nKvHeads * hd, rep = c.nHeads / c.nKvHeads;
  const W = c.slidingWindow ?? Infinity, scale = 1 / Math.sqrt(hd);
  const out = new Float32Array(S * T * qDim);
  // the rep query heads sharing a KV head go through one scores matmul and one P·V matmul
  const qh = new Float32Array(rep * T * hd), kh = new Float32Array(T * hd), vt = new Float32Array(hd * T);
  for (let s = 0; s < S; s++) {
    const r0 = s * T;
    for (let t = 0; t < T; t++) {
      applyRope(q, (r0 + t) * qDim, c.nHeads, t, rope, c.rope.layout);
      applyRope(k, (r0 + t) * kvDim, c.nKvHeads, t, rope, c.rope.layout);
    }
    for (let g = 0; g < c.nKvHeads; g++) {
      for (let t = 0; t < T; t++)
        for (let d = 0; d < hd; d++) {
          kh[t * hd + d] = k[(r0 + t) * kvDim + g * hd + d]!;
          vt[d * T + t] = v[(r0 + t) * kvDim + g * hd + d]!;
        }
      for (let i = 0; i < rep; i++) {
        const h = g * rep + i;
        for (let t = 0; t < T; t++) qh.set(q.subarray((r0 + t) * qDim + h * hd, (r0 + t) * qDim + (h + 1) * hd), (i * T + t) * hd);
      }
      const p = matmulF32(qh, rep * T, hd, kh, T); // scores [rep·T, T]
      for (let row = 0; row < rep * T; row++) {
        const t = row % T, o = row * T, lo = Math.max(0, t - W + 1), hi = t + 1;
        let max = -Infinity;
        for (let j = lo; j < hi; j++) if (p[o + j]! > max) max = p[o + j]!;
        let sum = 0;
        for (let j = lo; j < hi; j++) { const e = Math.exp((p[o + j]! - max) * scale); p[o + j] = e; sum += e; }
        const inv = 1 / sum;
        p.fill(0, o, o + lo);
        for (let j = lo; j < hi; j++) p[o + j]! *= inv;
        p.fill(0, o + hi, o + T);
      }
      const a = matmulF32(p, rep * T, T, vt, hd); // [rep·T, hd]
      for (let i = 0; i < rep; i++) {
        const h = g * rep + i;
        for (let t = 0; t < T; t++) out.set(a.subarray((i * T + t) * hd, (i * T + t + 1) * hd), (r0 + t) * qDim + h * hd);
      }
    }
  }
  return out;
}
