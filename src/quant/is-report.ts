// Per-layer integer-scale report: shift range, ŝ magnitude and bit width, relative error of
// ŝ·2^-k vs s, weight MSE of IS vs FS (vs the original W when given), and int32 headroom.
import { exactBounds, genericBounds, INT32_LIMIT, type IntegerScales } from './integer-scale.ts';
import type { QuantizedWeight } from './rtn.ts';

export interface IsLayerReport {
  name: string;
  k_min: number;
  k_max: number;
  /** max |ŝ| over the layer. */
  iscale_max: number;
  /** Bits of max |ŝ| as a signed integer (sign bit included); ≤ 16 means I16 storage fits. */
  iscale_bits: number;
  /** max over channels of the exact worst case E_n / 2^31 (< 1: proven overflow-free). */
  headroom: number;
  /** Same with the generic bound Σ|ŝ|·127·8·G (may exceed 1: then the exact bound is the proof). */
  headroom_generic: number;
  /** Mean over nonzero scales of |ŝ·2^-k − s| / s. */
  rel_err: number;
  /** Nonzero scales whose ŝ is below COARSE_ISCALE (rounding error can exceed 1/(2·64) ≈ 0.8%):
   *  the int32 bound held the shift down (very large K, or a wide spread of scales in a channel). */
  coarse_scales: number;
  /** Nonzero scales that round to ŝ = 0 (their groups contribute nothing under IS). */
  zero_scales: number;
  /** Mean squared error of the IS dequantized weights ŝ·2^-k·q (vs W if known, else vs s·q). */
  mse_is: number | null;
  /** Mean squared error of the FS dequantized weights s·q vs W (null without W). */
  mse_fs: number | null;
}

/** ŝ below this has a rounding error that can exceed 0.8% of its scale. */
export const COARSE_ISCALE = 64;

/** One warning line per layer whose integer scales lost precision (empty when none did). */
export function precisionWarnings(reports: IsLayerReport[]): string[] {
  return reports
    .filter((r) => r.coarse_scales > 0)
    .map((r) => `${r.name}: the int32 bound limits the shift: ${r.coarse_scales} scale(s) have |ŝ| < ${COARSE_ISCALE}` +
      (r.zero_scales > 0 ? `, ${r.zero_scales} round to 0 (those groups vanish under IS)` : '') +
      `; mean ŝ error ${r.rel_err.toExponential(2)} — consider a smaller group or --scale float`);
}

/** Signed bit width of an integer magnitude m: 1 + bit length of m. */
export function signedBits(magnitude: number): number {
  return magnitude === 0 ? 1 : Math.floor(Math.log2(magnitude)) + 2;
}

export function integerScaleReport(name: string, qw: QuantizedWeight, is: IntegerScales, original?: Float32Array): IsLayerReport {
  const { outFeatures: N, inFeatures: K, groupSize: G } = qw;
  const groups = K / G;
  let kMin = Infinity, kMax = -Infinity, iscaleMax = 0, relSum = 0, relCount = 0, coarse = 0, zero = 0;
  for (let n = 0; n < N; n++) {
    const k = is.shift[n]!;
    kMin = Math.min(kMin, k);
    kMax = Math.max(kMax, k);
    for (let g = 0; g < groups; g++) {
      const s = qw.scales[n * groups + g]!;
      const hat = is.iscales[n * groups + g]!;
      iscaleMax = Math.max(iscaleMax, Math.abs(hat));
      if (s !== 0) {
        relSum += Math.abs(hat * 2 ** -k - s) / Math.abs(s);
        relCount++;
        if (Math.abs(hat) < COARSE_ISCALE) coarse++;
        if (hat === 0) zero++;
      }
    }
  }
  let seIs = 0, seFs = 0;
  for (let n = 0; n < N; n++) {
    const inv = 2 ** -is.shift[n]!;
    for (let k = 0; k < K; k++) {
      const idx = n * groups + ((k / G) | 0);
      const q = qw.q[n * K + k]!;
      const fs = q * qw.scales[idx]!;
      const isVal = q * is.iscales[idx]! * inv;
      const ref = original ? original[n * K + k]! : fs;
      seIs += (isVal - ref) ** 2;
      seFs += (fs - ref) ** 2;
    }
  }
  const maxOf = (a: Float64Array) => a.reduce((m, v) => Math.max(m, v), 0);
  return {
    name,
    k_min: kMin,
    k_max: kMax,
    iscale_max: iscaleMax,
    iscale_bits: signedBits(iscaleMax),
    headroom: maxOf(exactBounds(is.iscales, qw)) / INT32_LIMIT,
    headroom_generic: maxOf(genericBounds(is.iscales, N, groups, G)) / INT32_LIMIT,
    rel_err: relCount ? relSum / relCount : 0,
    coarse_scales: coarse,
    zero_scales: zero,
    mse_is: seIs / (N * K),
    mse_fs: original ? seFs / (N * K) : null,
  };
}

/** The per-layer report as an aligned text table (one line per layer). */
export function formatIsReportTable(reports: IsLayerReport[]): string {
  const head = ['layer', 'k', 'max|ŝ|', 'bits', 'headroom', 'rel_err(ŝ)', 'mse_is', 'mse_fs'];
  const fmt = (v: number | null) => (v === null ? '-' : v.toExponential(3));
  const rows = reports.map((r) => [
    r.name, r.k_min === r.k_max ? `${r.k_min}` : `${r.k_min}..${r.k_max}`, `${r.iscale_max}`, `${r.iscale_bits}`,
    r.headroom.toFixed(4), fmt(r.rel_err), fmt(r.mse_is), fmt(r.mse_fs),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}
