// Per-token dynamic symmetric int8 activation quantization (docs/QUANT_SPEC.md, "Activations"):
// s_x = fp32(amax/127), inv = fp32(127/amax), q = clamp(rint(fp32(x·inv)), -127, 127).
import { rintClamp } from './fp32.ts';

export const QMAX_A = 127;

export interface QuantizedActivations {
  /** int8 values [M, K] in [-127, 127]. */
  readonly q: Int8Array;
  /** Per-row scale s_x [M] (fp32). */
  readonly scale: Float32Array;
}

/** Quantize x[M, K] row by row. */
export function quantizeActivations(x: Float32Array, rows: number, cols: number): QuantizedActivations {
  const q = new Int8Array(rows * cols);
  const scale = new Float32Array(rows);
  for (let t = 0; t < rows; t++) {
    const base = t * cols;
    let amax = 0;
    for (let k = base; k < base + cols; k++) {
      const a = Math.abs(x[k]!);
      if (a > amax) amax = a;
    }
    if (amax === 0) continue; // s_x = 0, q = 0
    scale[t] = Math.fround(amax / QMAX_A);
    const inv = Math.fround(QMAX_A / amax);
    for (let k = base; k < base + cols; k++) q[k] = rintClamp(Math.fround(x[k]! * inv), -QMAX_A, QMAX_A);
  }
  return { q, scale };
}
