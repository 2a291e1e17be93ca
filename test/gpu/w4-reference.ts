// Test data and sampled CPU references for the W4 GEMM kernels (docs/QUANT_SPEC.md): random int4
// weights with fp16 group scales (and their integer scales), fp16-exact activations, and the
// expected output at chosen (t, n) positions only — so M=1000 × N=22016 × K=14336 stays cheap
// while every kernel output is still scanned for poison. Checked against src/quant's plain-loop
// references in test/gpu/w4-reference.test.ts (runs without a GPU).
import { f16ArrayToF32, f32ArrayToF16, roundToF16 } from '../../src/core/dtype.ts';
import type { Rng } from '../../src/core/rng.ts';
import { quantizeActivations } from '../../src/quant/act-quant.ts';
import { fmaF32 } from '../../src/quant/fp32.ts';
import { computeIntegerScales, type IntegerScales } from '../../src/quant/integer-scale.ts';
import { isEpilogue } from '../../src/quant/linear-is.ts';
import type { QuantizedWeight } from '../../src/quant/rtn.ts';

/** Relative tolerance of an fp16 output: one rounding is ≤ 2^-11; twice that for slack. */
export const FP16_OUT_REL_TOL = 2 ** -10;
/** fp32 rounding per addition (unit roundoff), for summation-order bounds. */
export const FP32_UNIT = 2 ** -24;
/** fp16 rounding of each dequantized weight q·s in the W4A16 kernel. */
export const FP16_UNIT = 2 ** -11;

export interface W4Case {
  M: number; K: number; N: number; G: number;
  /** Activations, fp16-exact values [M, K] and their fp16 bits. */
  x: Float32Array; x16: Uint16Array;
  /** Group-quantized weight (G) and its integer scales. */
  qw: QuantizedWeight; is: IntegerScales;
  /** The same int4 values with per-channel scales (G = K) for PC. */
  qwPc: QuantizedWeight;
  /** CPU per-token int8 quantization of x. */
  qx: Int8Array; sx: Float32Array;
}

function randomScales(rng: Rng, count: number): Float32Array {
  // Magnitudes spread over ~2.5 decades like real layers, fp16-exact, never zero.
  return Float32Array.from({ length: count }, () => roundToF16(1e-4 + 0.01 * Math.abs(rng.normal()) * 2 ** rng.int(-4, 4)));
}

export function makeW4Case(rng: Rng, M: number, K: number, N: number, G: number): W4Case {
  const q = new Int8Array(N * K);
  for (let i = 0; i < q.length; i++) q[i] = rng.int(-7, 7);
  const qw: QuantizedWeight = { outFeatures: N, inFeatures: K, groupSize: G, q, scales: randomScales(rng, N * (K / G)) };
  const qwPc: QuantizedWeight = { outFeatures: N, inFeatures: K, groupSize: K, q, scales: randomScales(rng, N) };
  const raw = rng.normals(M * K, 1);
  for (let t = 0; t < M; t++) raw[t * K + rng.int(0, K - 1)] = 20 * (rng.next() < 0.5 ? -1 : 1); // an outlier per token
  const x16 = f32ArrayToF16(raw);
  const x = f16ArrayToF32(x16);
  const { q: qx, scale: sx } = quantizeActivations(x, M, K);
  return { M, K, N, G, x, x16, qw, is: computeIntegerScales(qw, 'auto', 'test'), qwPc, qx, sx };
}

/** Positions checked: every row on ~48 columns (incl. 0 and N-1) and every column on ≤ 3 rows. */
export function samplePositions(rng: Rng, M: number, N: number): [number, number][] {
  const cols = new Set([0, N - 1]);
  while (cols.size < Math.min(N, 48)) cols.add(rng.int(0, N - 1));
  const rows = new Set([0, M - 1, rng.int(0, M - 1)]);
  const out: [number, number][] = [];
  for (let t = 0; t < M; t++) for (const n of cols) out.push([t, n]);
  for (const t of rows) for (let n = 0; n < N; n++) if (!cols.has(n)) out.push([t, n]);
  return out;
}

/** Exact group partial sums P_g[t, n] (integers). */
export function groupPartials(c: W4Case, t: number, n: number, G = c.G): Float64Array {
  const groups = c.K / G;
  const p = new Float64Array(groups);
  const xo = t * c.K;
  const wo = n * c.K;
  for (let g = 0; g < groups; g++) {
    let s = 0;
    for (let k = g * G; k < (g + 1) * G; k++) s += c.qx[xo + k]! * c.qw.q[wo + k]!;
    p[g] = s;
  }
  return p;
}

/** IS output (fp32, exact per spec) at (t, n). */
export function isAt(c: W4Case, t: number, n: number, p = groupPartials(c, t, n)): number {
  const groups = c.K / c.G;
  let acc = 0;
  for (let g = 0; g < groups; g++) acc += p[g]! * c.is.iscales[n * groups + g]!;
  return isEpilogue(acc, c.sx[t]!, c.is.shift[n]!);
}

/** FS: the spec's in-order fp32 value, the float64 exact value and an any-order fp32 error bound. */
export function fsAt(c: W4Case, t: number, n: number, p = groupPartials(c, t, n)): { inOrder: number; exact: number; bound: number } {
  const groups = c.K / c.G;
  let acc = 0;
  let exact = 0;
  let mag = 0;
  for (let g = 0; g < groups; g++) {
    const s = c.qw.scales[n * groups + g]!;
    acc = fmaF32(p[g]!, s, acc);
    exact += p[g]! * s;
    mag += Math.abs(p[g]! * s);
  }
  const sx = c.sx[t]!;
  return { inOrder: Math.fround(acc * sx), exact: exact * sx, bound: (groups + 1) * FP32_UNIT * mag * sx };
}

/** PC output (fp32, exact per spec) at (t, n): one group of K. */
export function pcAt(c: W4Case, t: number, n: number, p = groupPartials(c, t, n)): number {
  let total = 0;
  for (const v of p) total += v;
  return Math.fround(Math.fround(total * c.sx[t]!) * c.qwPc.scales[n]!);
}

/** W4A16 at (t, n): float64 Σ x·(q·s) and the allowed error (fp32 accumulation + fp16 weights). */
export function w4a16At(c: W4Case, t: number, n: number): { exact: number; bound: number } {
  const groups = c.K / c.G;
  let exact = 0;
  let mag = 0;
  const xo = t * c.K;
  const wo = n * c.K;
  for (let g = 0; g < groups; g++) {
    const s = c.qw.scales[n * groups + g]!;
    let part = 0;
    let partMag = 0;
    for (let k = g * c.G; k < (g + 1) * c.G; k++) {
      const v = c.x[xo + k]! * c.qw.q[wo + k]!;
      part += v;
      partMag += Math.abs(v);
    }
    exact += part * s;
    mag += partMag * s;
  }
  return { exact, bound: (c.K * FP32_UNIT + FP16_UNIT) * mag };
}
