// Shared by the CUDA GPTQ test (gptq-gpu.test.ts) and its CPU-side twin (gptq-logic.test.ts): the
// seeded layers (heavy-tailed weights, outlier input channels, a dead input), the cases and the
// named tolerances of "the GPU GPTQ matches the CPU GPTQ".
import { f16ArrayToF32, f32ArrayToF16 } from '../../src/core/dtype.ts';
import { Rng } from '../../src/core/rng.ts';
import { hessianError } from '../../src/quant/hessian.ts';
import { dequantize, type QuantizedWeight } from '../../src/quant/rtn.ts';

/** Fraction of int4 values that must equal the CPU's (fp32 vs float64 moves a few values across rounding boundaries). */
export const MIN_SAME_Q = 0.99;
/** |objective_gpu − objective_cpu| / objective_cpu allowed. */
export const OBJECTIVE_REL_TOL = 0.01;
/** ‖U_gpu − U_cpu‖_F / ‖U_cpu‖_F allowed (fp32 Gram and blocked Cholesky / inverse; the fp32 factor alone is ~3e-7 on these Hessians, gptq-logic.test.ts). */
export const U_REL_TOL = 1e-4;
/** Relative gap of two Hessian diagonal entries under which fp32 and float64 may order them differently. */
export const TIE = 1e-4;
/** Fraction of int4 values of the whole calibrated model that must equal the CPU pipeline's (differences compound over layers). */
export const PIPELINE_MIN_SAME_Q = 0.97;

/** Heavy-tailed weights: per-row scale, 2% of values ×8. */
export function weights(rng: Rng, N: number, K: number): Float32Array {
  const w = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    const s = 0.02 * (0.3 + 1.5 * rng.next());
    for (let k = 0; k < K; k++) w[n * K + k] = rng.normal() * s * (rng.next() < 0.02 ? 8 : 1);
  }
  return w;
}

/** fp16-exact activations with per-channel scales, a few loud channels and one dead input. */
export function inputs(rng: Rng, rows: number, K: number, dead: number): Float32Array {
  const scale = Float32Array.from({ length: K }, (_, k) => Math.exp(0.5 * rng.normal()) * (k % 29 === 3 ? 12 : 1));
  const x = new Float32Array(rows * K);
  for (let r = 0; r < rows; r++) for (let k = 0; k < K; k++) x[r * K + k] = k === dead ? 0 : rng.normal() * scale[k]!;
  return f16ArrayToF32(f32ArrayToF16(x));
}

export function sameFraction(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

export function objective(w: Float32Array, qw: QuantizedWeight, h: Float64Array, N: number, K: number): number {
  const dq = dequantize(qw), d = new Float64Array(N * K);
  for (let i = 0; i < d.length; i++) d[i] = w[i]! - dq[i]!;
  return hessianError(d, N, K, h);
}

export interface Case { name: string; N: number; K: number; group: number; blockSize?: number; actOrder: boolean; input: 'f16' | 'f32' }
/** The dead input of every case. */
export const DEAD = 37;
export const CASE_ROWS = 768;
export const CASES: Case[] = [
  { name: 'g128, natural order, fp16 inputs', N: 72, K: 512, group: 128, actOrder: false, input: 'f16' },
  { name: 'g128, act-order, fp16 inputs', N: 72, K: 512, group: 128, actOrder: true, input: 'f16' },
  { name: 'g64, K = 320 (not a multiple of the block), natural, fp32 inputs', N: 40, K: 320, group: 64, actOrder: false, input: 'f32' },
  { name: 'g64, K = 320, act-order, fp32 inputs', N: 40, K: 320, group: 64, actOrder: true, input: 'f32' },
  { name: 'g128 with 64-column blocks (a group spans two blocks), natural', N: 33, K: 384, group: 128, blockSize: 64, actOrder: false, input: 'f16' },
  { name: 'per channel (the group spans every block), natural', N: 24, K: 320, group: -1, actOrder: false, input: 'f32' },
];

