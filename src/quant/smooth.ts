// SmoothQuant (Xiao et al. 2022) migration of activation outliers into the weights, for W4A8:
// per input channel c of the linears sharing an input, s_c = max|x_c|^α / max|W[:, c]|^(1−α)
// (max over the calibration rows and over every row of every linear of the group); the weights
// become W·diag(s) and the input x/s (folded by the caller, calibrate.ts). Degenerate channels
// (no activation or no weight) keep s = 1.
import { fail } from '../core/errors.ts';
import type { LinearWeight } from './awq.ts';

export const SMOOTH_MIN_SCALE = 1e-5;

export function smoothScales(actAbsMax: Float32Array, linears: readonly LinearWeight[], K: number, alpha: number): Float32Array {
  if (!(alpha >= 0 && alpha <= 1)) fail('--smooth', `alpha must be in [0, 1] (got ${alpha})`);
  const wmax = new Float32Array(K);
  for (const { w, N } of linears)
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wmax[k] = Math.max(wmax[k]!, Math.abs(w[n * K + k]!));
  const s = new Float32Array(K);
  for (let k = 0; k < K; k++) {
    const a = actAbsMax[k]!, b = wmax[k]!;
    const v = a > 0 && b > 0 ? Math.pow(a, alpha) / Math.pow(b, 1 - alpha) : 1;
    s[k] = Number.isFinite(v) ? Math.max(v, SMOOTH_MIN_SCALE) : 1;
  }
  return s;
}
