// Round-to-nearest symmetric int4 weight quantization per group along K (docs/QUANT_SPEC.md,
// "Weights"): fp16-rounded scales s = fp16(absmax/7), q = clamp(rint(W/s), -7, 7), optional
// per-group clipping search. Produces the canonical (unpacked) QuantizedWeight every backend reads.
import { fail } from '../core/errors.ts';
import { roundToF16 } from '../core/dtype.ts';
import { rintClamp } from './fp32.ts';

export const QMAX_W = 7;
export const SUPPORTED_GROUPS = [32, 64, 128, 256, -1] as const;
/** Clip ratios tried by `--clip`: 1.00, 0.99, ..., 0.50 (fp32). */
export const CLIP_RATIOS: readonly number[] = Array.from({ length: 51 }, (_, i) => Math.fround((100 - i) / 100));

/** A weight W[N, K] quantized to int4 with one fp16-valued scale per (output channel, group). */
export interface QuantizedWeight {
  readonly outFeatures: number; // N
  readonly inFeatures: number; // K
  /** Group size along K (G = K for per-channel). */
  readonly groupSize: number;
  /** int4 values in [-8, 7] (the quantizer only produces [-7, 7]), row-major [N, K]. */
  readonly q: Int8Array;
  /** fp16-exact scales, row-major [N, K/G]. */
  readonly scales: Float32Array;
}

export interface RtnOptions {
  /** 32, 64, 128, 256, or -1 for per channel (G = K). */
  group: number;
  /** Search a per-group clip ratio minimizing the group's squared error. */
  clip?: boolean;
  /** Name used in error messages. */
  name?: string;
}

/** Resolve a `--group` value to the group size G for a given K (checks divisibility). */
export function resolveGroupSize(group: number, inFeatures: number, name = 'weight'): number {
  if (!(SUPPORTED_GROUPS as readonly number[]).includes(group)) {
    fail(name, `unsupported group size ${group} (use 32, 64, 128, 256 or -1 for per channel)`);
  }
  const g = group === -1 ? inFeatures : group;
  if (inFeatures % g !== 0) fail(name, `in_features ${inFeatures} is not divisible by group size ${g}`);
  if (inFeatures % 2 !== 0) fail(name, `in_features ${inFeatures} is odd; int4 packing needs an even K`);
  return g;
}

/** Scale for a group absmax: fp32 division, then rounded to fp16. */
export function scaleFromAbsmax(absmax: number): number {
  return roundToF16(Math.fround(absmax / QMAX_W));
}

/** Quantize W[N, K] (row-major fp32) with RTN; into `into`'s arrays when given (N·K values, N·K/G scales: reused scratch). */
export function quantizeRtn(w: Float32Array, outFeatures: number, inFeatures: number, opts: RtnOptions,
                            into?: { q: Int8Array; scales: Float32Array }): QuantizedWeight {
  const name = opts.name ?? 'weight';
  if (w.length !== outFeatures * inFeatures) fail(name, `has ${w.length} values, expected ${outFeatures}x${inFeatures}`);
  const G = resolveGroupSize(opts.group, inFeatures, name);
  const groups = inFeatures / G;
  if (into && (into.q.length !== outFeatures * inFeatures || into.scales.length !== outFeatures * groups))
    fail(name, `output arrays have ${into.q.length} values and ${into.scales.length} scales, expected ${outFeatures * inFeatures} and ${outFeatures * groups}`);
  const q = into?.q ?? new Int8Array(outFeatures * inFeatures);
  const scales = into?.scales ?? new Float32Array(outFeatures * groups);
  for (let n = 0; n < outFeatures; n++) {
    for (let g = 0; g < groups; g++) {
      const start = n * inFeatures + g * G;
      let absmax = 0;
      for (let k = start; k < start + G; k++) {
        const a = Math.abs(w[k]!);
        // every value is checked: a running max would let a later finite value replace a NaN
        if (!Number.isFinite(a)) fail(name, `non-finite weight ${w[k]} at row ${n} column ${k - n * inFeatures} (a broken checkpoint: refusing to quantize it)`);
        if (a > absmax) absmax = a;
      }
      const s = opts.clip ? bestClipScale(w, start, G, absmax) : scaleFromAbsmax(absmax);
      if (!Number.isFinite(s)) fail(name, `row ${n} group ${g}: absmax ${absmax} overflows an fp16 scale`);
      scales[n * groups + g] = s;
      quantizeGroup(w, start, G, s, q);
    }
  }
  return { outFeatures, inFeatures, groupSize: G, q, scales };
}

function quantizeGroup(w: Float32Array, start: number, size: number, s: number, q: Int8Array): void {
  for (let k = start; k < start + size; k++) {
    q[k] = s === 0 ? 0 : rintClamp(Math.fround(w[k]! / s), -QMAX_W, QMAX_W);
  }
}

/** The scale of the clip ratio with the smallest squared error q·s vs W (ties: the larger ratio). */
function bestClipScale(w: Float32Array, start: number, size: number, absmax: number): number {
  let best = scaleFromAbsmax(absmax);
  let bestErr = Infinity;
  for (const ratio of CLIP_RATIOS) {
    const s = scaleFromAbsmax(Math.fround(ratio * absmax));
    let err = 0;
    for (let k = start; k < start + size; k++) {
      const qv = s === 0 ? 0 : rintClamp(Math.fround(w[k]! / s), -QMAX_W, QMAX_W);
      const d = Math.fround(qv * s) - w[k]!;
      err += d * d;
    }
    if (err < bestErr) {
      bestErr = err;
      best = s;
    }
  }
  return best;
}

/** Dequantized weights q·s as fp32 [N, K] (exact: |q| ≤ 8 times an fp16 value fits fp32). */
export function dequantize(qw: QuantizedWeight, into?: Float32Array): Float32Array {
  const { outFeatures: N, inFeatures: K, groupSize: G } = qw;
  const groups = K / G;
  if (into && into.length !== N * K) fail('dequantize', `output has ${into.length} values, expected ${N}x${K}`);
  const out = into ?? new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) out[n * K + k] = qw.q[n * K + k]! * qw.scales[n * groups + ((k / G) | 0)]!;
  }
  return out;
}
