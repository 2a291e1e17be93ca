// The per-(output channel, group) clip search shared by AWQ and GPTQ (`--clip` with gptq): for the
// G columns [k0, k0+G) of every row of W, try absmax' = fp32(r·absmax), r ∈ {1.00, 0.95, ..., 0.50},
// with the spec's quantizer (s = fp16(absmax'/7), q = clamp(rint(fp32(w/s)), ±7)), and keep the scale
// whose error d = q·s − w has the smallest output error dᵀ·H_g·d on the calibration inputs (H_g: the
// group's diagonal block of the Hessian / Gram matrix; one fp32 matmul per ratio, summed in float64).
// Ties keep the larger r (r = 1.00, plain absmax, first). A scale only: the caller quantizes with it.
import { matmulF32 } from '../core/matmul.ts';
import { rintClamp } from './fp32.ts';
import { QMAX_W, scaleFromAbsmax } from './rtn.ts';

export const CLIP_SEARCH_RATIOS: readonly number[] = Array.from({ length: 11 }, (_, i) => Math.fround((20 - i) / 20));

/** The block [k0, k0+G)² of a full [K, K] Hessian (row-major) as fp32 [G, G], as clipGroupScales reads it. */
export function hessianBlock(h: Float64Array, K: number, k0: number, G: number): Float32Array {
  const hg = new Float32Array(G * G);
  for (let i = 0; i < G; i++) for (let j = 0; j < G; j++) hg[i * G + j] = h[(k0 + i) * K + k0 + j]!;
  return hg;
}

/**
 * Best scale per row for the group of columns [k0, k0+G) of W (row-major, row stride `ld`).
 * `hg` is the group's [G, G] block of the Hessian in fp32 (of any symmetric positive semi-definite
 * matrix over W's columns: hessianBlock, or InputStats.hessianBlocksF32). Returns one fp16-exact scale per row.
 */
export function clipGroupScales(w: Float32Array | Float64Array, N: number, ld: number, k0: number, G: number,
                                hg: Float32Array): Float32Array {
  const absmax = new Float32Array(N), d = new Float32Array(N * G);
  const bestErr = new Float64Array(N).fill(Infinity), best = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    let m = 0;
    for (let k = 0; k < G; k++) m = Math.max(m, Math.abs(Math.fround(w[n * ld + k0 + k]!)));
    absmax[n] = m;
  }
  for (const r of CLIP_SEARCH_RATIOS) {
    for (let n = 0; n < N; n++) {
      const s = scaleFromAbsmax(Math.fround(r * absmax[n]!));
      for (let k = 0; k < G; k++) {
        const x = Math.fround(w[n * ld + k0 + k]!);
        const qv = s === 0 ? 0 : rintClamp(Math.fround(x / s), -QMAX_W, QMAX_W);
        d[n * G + k] = Math.fround(qv * s) - x;
      }
    }
    const t = matmulF32(d, N, G, hg, G);
    for (let n = 0; n < N; n++) {
      let e = 0;
      for (let k = 0; k < G; k++) e += t[n * G + k]! * d[n * G + k]!;
      if (e < bestErr[n]!) { bestErr[n] = e; best[n] = scaleFromAbsmax(Math.fround(r * absmax[n]!)); }
    }
  }
  return best;
}
