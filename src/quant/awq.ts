// AWQ (Lin et al. 2023) on calibration statistics, for the linears that share one input:
// 1. scale search: s_c = mean|x_c|^α (normalized by sqrt(max·min)), α ∈ {0, 1/20, ..., 19/20};
//    the α minimizing the output error Σ_linears tr(ΔW·H·ΔWᵀ), ΔW = Q(W·diag(s))·diag(s)⁻¹ − W,
//    H = XᵀX of the calibration inputs (= ‖X·ΔWᵀ‖², the error of the linears' outputs, computed
//    from the Gram matrix instead of the tokens). α = 0 is plain RTN, so the search never loses
//    to RTN on its objective. (The original AWQ rule, activation magnitudes only.)
// 2. clip search per (output channel, group): absmax → fp32(r·absmax), r ∈ {1.00, 0.95, ..., 0.50},
//    minimizing the group's output error dᵀ·H_g·d (H_g the group's diagonal block of H; ties: the
//    larger r). Quantization itself is the spec's: s = fp16(absmax'/7), q = clamp(rint(w/s), ±7).
// Both read H in fp32 (hessian.ts hessianF32, hessianBlocksF32): the search the whole matrix, in the
// heap, the clip only its diagonal blocks (K·G values).
// The caller folds diag(s)⁻¹ into whatever produces the input (calibrate.ts).
import { fail } from '../core/errors.ts';
import { heapF32, heapFree, matmulF32, toHeap } from '../core/matmul.ts';
import { rintClamp } from './fp32.ts';
import { clipGroupScales, CLIP_SEARCH_RATIOS } from './group-clip.ts';
import { dequantize, QMAX_W, quantizeRtn, resolveGroupSize, type QuantizedWeight } from './rtn.ts';

export const AWQ_GRID = 20;
export const AWQ_CLIP_RATIOS: readonly number[] = CLIP_SEARCH_RATIOS;

export interface LinearWeight {
  w: Float32Array;
  N: number;
}

/** Σ_n Δw_n·H·Δw_nᵀ with one fp32 matmul (H symmetric, given as fp32; ΔW·H into `out` when given) and a float64 sum. */
export function outputError(dw: Float32Array, N: number, K: number, hF32: Float32Array, out?: Float32Array): number {
  const t = matmulF32(dw, N, K, hF32, K, out);
  let total = 0;
  for (let i = 0; i < N * K; i++) total += t[i]! * dw[i]!;
  return total;
}

/** ΔW of RTN applied to W·diag(s), mapped back: Q(W·diag(s))·diag(s)⁻¹ − W, into dw [N, K] (`rtn`: RTN's output arrays, reused). */
function scaledRtnDelta(w: Float32Array, N: number, K: number, s: Float32Array, group: number, dw: Float32Array,
                        rtn: { q: Int8Array; scales: Float32Array }): Float32Array {
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) dw[n * K + k] = w[n * K + k]! * s[k]!;
  dequantize(quantizeRtn(dw, N, K, { group }, rtn), dw);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) dw[n * K + k] = dw[n * K + k]! / s[k]! - w[n * K + k]!;
  return dw;
}

export interface AwqScaleResult {
  /** s [K]: weights get W·diag(s), the input x/s */
  scales: Float32Array;
  alpha: number;
  loss: number;
  /** loss at α = 0 (RTN) */
  lossRtn: number;
}

/** The candidate scales of AWQ's grid: for α = i/grid, s_c = max(mean|x_c|, 1e-4)^α / sqrt(max·min). */
export function awqCandidates(absMean: Float64Array, K: number, grid = AWQ_GRID): Float32Array[] {
  return Array.from({ length: grid }, (_, i) => {
    const alpha = i / grid, s = new Float32Array(K);
    let max = 0, min = Infinity;
    for (let k = 0; k < K; k++) {
      const v = Math.pow(Math.max(absMean[k]!, 1e-4), alpha);
      s[k] = v;
      max = Math.max(max, v);
      min = Math.min(min, v);
    }
    const norm = Math.sqrt(max * min);
    for (let k = 0; k < K; k++) s[k] = s[k]! / norm;
    return s;
  });
}

/** AWQ's output error Σ_linears tr(ΔW·H·ΔWᵀ) of each candidate scale, for linears sharing an input
 *  with fp32 Hessian h [K, K] (InputStats.hessianF32: in the heap, where the matmuls read it in place). */
export function awqLosses(linears: readonly LinearWeight[], K: number, h: Float32Array, candidates: readonly Float32Array[], group: number): number[] {
  const hh = toHeap(h); // in the heap once, not copied per α and linear (K×K fp32: 485 MB at K = 11008)
  // one set of scratch for every α and linear (N×K each: 180 MB at 7B's down_proj): ΔW and ΔW·H in
  // the heap, where the matmul works on them in place, and RTN's int4 values and scales
  const maxN = Math.max(...linears.map((l) => l.N)), groups = K / resolveGroupSize(group, K);
  const dw = heapF32(maxN * K), t = heapF32(maxN * K);
  const rtn = { q: new Int8Array(maxN * K), scales: new Float32Array(maxN * groups) };
  try {
    return candidates.map((s) => {
      let loss = 0;
      for (const l of linears) {
        const n = l.N * K, into = { q: rtn.q.subarray(0, n), scales: rtn.scales.subarray(0, l.N * groups) };
        loss += outputError(scaledRtnDelta(l.w, l.N, K, s, group, dw.subarray(0, n), into), l.N, K, hh, t);
      }
      return loss;
    });
  } finally {
    heapFree(dw);
    heapFree(t);
    if (hh !== h) heapFree(hh);
  }
}

/** The candidate of least loss (losses per candidate, summed over whatever shares the scale; ties: the smaller α). */
export function awqBest(candidates: readonly Float32Array[], losses: readonly number[]): AwqScaleResult {
  let best = 0;
  losses.forEach((l, i) => { if (l < losses[best]!) best = i; });
  return { scales: candidates[best]!, alpha: best / candidates.length, loss: losses[best]!, lossRtn: losses[0]! };
}

/** Search AWQ's per-input-channel scales for linears sharing an input with fp32 Hessian h [K, K] and mean |x|. */
export function awqSearchScales(linears: readonly LinearWeight[], K: number, h: Float32Array, absMean: Float64Array,
                                group: number, grid = AWQ_GRID): AwqScaleResult {
  const candidates = awqCandidates(absMean, K, grid);
  return awqBest(candidates, awqLosses(linears, K, h, candidates, group));
}

/** Quantize W[N, K] with the clip ratio per (channel, group) that minimizes the group's output error (group-clip.ts),
 *  from the Hessian's diagonal blocks hBlocks, fp32 [K/G, G, G] (InputStats.hessianBlocksF32). */
export function awqClipQuantize(w: Float32Array, N: number, K: number, hBlocks: Float32Array, group: number, name = 'weight'): QuantizedWeight {
  const G = resolveGroupSize(group, K, name), groups = K / G;
  if (hBlocks.length !== K * G) fail(name, `Hessian blocks have ${hBlocks.length} values, expected ${groups}x${G}x${G}`);
  const q = new Int8Array(N * K), scales = new Float32Array(N * groups);
  for (let g = 0; g < groups; g++) {
    const k0 = g * G, best = clipGroupScales(w, N, K, k0, G, hBlocks.subarray(g * G * G, (g + 1) * G * G));
    for (let n = 0; n < N; n++) {
      const s = best[n]!;
      scales[n * groups + g] = s;
      for (let k = k0; k < k0 + G; k++) q[n * K + k] = s === 0 ? 0 : rintClamp(Math.fround(w[n * K + k]! / s), -QMAX_W, QMAX_W);
    }
  }
  return { outFeatures: N, inFeatures: K, groupSize: G, q, scales };
}
