// Integer scales for W4A8 (docs/QUANT_SPEC.md, "W4A8 with integer scales"): ŝ[g,n] = rint(s[g,n]·2^k_n)
// with a shift k_n per output channel, chosen so the int32 accumulator PROVABLY cannot overflow.
//
// The proof. For output channel n, the kernel computes acc = Σ_g P_g·ŝ_g with
// P_g = Σ_{k∈g} q_x[k]·q_w[n,k] and |q_x| ≤ 127. Every partial sum the kernel can form (any order of
// groups, any split of a group into MMA k-steps) is a sub-sum of the terms q_x[k]·q_w[n,k]·ŝ_{g(k)},
// so its magnitude is at most
//     E_n = 127 · Σ_k |ŝ_{g(k)} · q_w[n,k]|       (the exact bound, from the stored weights)
//         ≤ G_n = Σ_g |ŝ_g| · 127·8·G             (the generic bound of the spec, any int4 weights).
// E_n is attained by the activation q_x[k] = 127·sign(ŝ·q_w[n,k]), so it is the tight worst case.
// If E_n < 2^31 then no activation whatsoever overflows int32. The quantizer requires E_n < 2^31
// for every channel, and loaders re-check it from the file (a file that fails is rejected).
// We use E_n rather than G_n because real weights have mean |q_w| ≈ 2-3, not 8: the exact bound
// allows ~3x larger ŝ (≈1.5 more bits), which matters for large K (many groups).
//
// Amplifier modes:
// - 'auto' (default): per channel, the largest k_n ≤ cap_n with E_n < 2^31, where cap_n is the
//   smallest k making every nonzero s[g,n]·2^k ≥ 2^10 (capped at 30). At that point ŝ = s·2^k
//   EXACTLY (an fp16 value ≥ 2^10 is an integer: 11 significant bits), so any larger k cannot
//   reduce the error; it would only spend headroom.
// - 'layer': one k for the whole layer: the smallest k with min nonzero s·2^k ≥ 1 (the rule used
//   when the Integer Scale paper's exact heuristic is not available: every scale survives as ≥ 1),
//   lowered (documented fallback) until E_n < 2^31 holds for every channel.
// - number K: fixed 2^K for every channel; a layer where that breaks the bound is an error.
import { fail } from '../core/errors.ts';
import { rint } from './fp32.ts';
import type { QuantizedWeight } from './rtn.ts';

export const INT32_LIMIT = 2 ** 31;
export const MAX_SHIFT = 30;
/** fp16 values ≥ 2^10 are integers, so ŝ = s·2^k exactly once s·2^k ≥ 2^10. */
export const EXACT_ISCALE_MIN = 1024;
export const QMAX_X = 127;
/** |q_w| ≤ 8 covers any int4 (the generic bound of the spec). */
export const QMAX_W_ANY = 8;

export type Amplifier = 'auto' | 'layer' | number;

export interface IntegerScales {
  /** ŝ [N, K/G] (int32 values). */
  readonly iscales: Int32Array;
  /** k_n [N] in [0, 30]. */
  readonly shift: Int8Array;
}

/** Parse `--amplifier auto|layer|K`. */
export function parseAmplifier(text: string): Amplifier {
  if (text === 'auto' || text === 'layer') return text;
  if (/^\d+$/.test(text) && Number(text) <= MAX_SHIFT) return Number(text);
  return fail('--amplifier', `expected auto, layer or an integer shift 0..${MAX_SHIFT}, got '${text}'`);
}

/** Σ_{k∈g} |q_w[n,k]| per (n, g): the weight part of the exact bound, [N, K/G]. */
export function groupAbsSums(qw: QuantizedWeight): Float64Array {
  const { outFeatures: N, inFeatures: K, groupSize: G } = qw;
  const groups = K / G;
  const sums = new Float64Array(N * groups);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) sums[n * groups + ((k / G) | 0)]! += Math.abs(qw.q[n * K + k]!);
  }
  return sums;
}

/** E_n = 127·Σ_g |ŝ_g|·Σ_{k∈g}|q_w| for channel n, for a candidate shift. */
function exactBoundAt(scales: Float32Array, absSums: Float64Array, row: number, groups: number, k: number): number {
  const amp = 2 ** k;
  let total = 0;
  for (let g = 0; g < groups; g++) total += Math.abs(rint(scales[row + g]! * amp)) * absSums[row + g]!;
  return QMAX_X * total;
}

/** Exact worst-case |acc| per channel for stored integer scales: E_n (see the proof above). */
export function exactBounds(iscales: Int32Array, qw: QuantizedWeight): Float64Array {
  const groups = qw.inFeatures / qw.groupSize;
  const absSums = groupAbsSums(qw);
  const out = new Float64Array(qw.outFeatures);
  for (let n = 0; n < qw.outFeatures; n++) {
    let total = 0;
    for (let g = 0; g < groups; g++) total += Math.abs(iscales[n * groups + g]!) * absSums[n * groups + g]!;
    out[n] = QMAX_X * total;
  }
  return out;
}

/** Generic bound G_n = Σ_g |ŝ_g|·127·8·G per channel (holds for any int4 weights). */
export function genericBounds(iscales: Int32Array, outFeatures: number, groups: number, groupSize: number): Float64Array {
  const out = new Float64Array(outFeatures);
  const perGroup = QMAX_X * QMAX_W_ANY * groupSize;
  for (let n = 0; n < outFeatures; n++) {
    let total = 0;
    for (let g = 0; g < groups; g++) total += Math.abs(iscales[n * groups + g]!);
    out[n] = total * perGroup;
  }
  return out;
}

/** Smallest k in [0, 30] with s·2^k ≥ target for every nonzero s of the given scales. */
function smallestShiftReaching(scales: Float32Array, from: number, to: number, target: number): number {
  let minScale = Infinity;
  for (let i = from; i < to; i++) {
    const s = Math.abs(scales[i]!);
    if (s > 0 && s < minScale) minScale = s;
  }
  if (minScale === Infinity) return 0;
  let k = 0;
  while (k < MAX_SHIFT && minScale * 2 ** k < target) k++;
  return k;
}

/** Choose shifts and integer scales for one layer. `name` names the layer in errors. */
export function computeIntegerScales(qw: QuantizedWeight, amplifier: Amplifier, name: string): IntegerScales {
  const { outFeatures: N, inFeatures: K, groupSize: G } = qw;
  const groups = K / G;
  const absSums = groupAbsSums(qw);
  const shift = new Int8Array(N);
  const fits = (n: number, k: number) => exactBoundAt(qw.scales, absSums, n * groups, groups, k) < INT32_LIMIT;

  if (amplifier === 'auto') {
    for (let n = 0; n < N; n++) {
      let k = smallestShiftReaching(qw.scales, n * groups, (n + 1) * groups, EXACT_ISCALE_MIN);
      while (k >= 0 && !fits(n, k)) k--;
      if (k < 0) fail(name, `output channel ${n}: scales too large for int32 accumulation even with shift 0`);
      shift[n] = k;
    }
  } else {
    let k: number;
    if (amplifier === 'layer') {
      k = smallestShiftReaching(qw.scales, 0, N * groups, 1);
      for (let n = 0; n < N && k >= 0; n++) while (k >= 0 && !fits(n, k)) k--;
      if (k < 0) fail(name, 'scales too large for int32 accumulation even with shift 0');
    } else {
      if (!Number.isInteger(amplifier) || amplifier < 0 || amplifier > MAX_SHIFT) fail(name, `amplifier shift ${amplifier} outside 0..${MAX_SHIFT}`);
      k = amplifier;
      for (let n = 0; n < N; n++) {
        if (!fits(n, k)) {
          const bound = exactBoundAt(qw.scales, absSums, n * groups, groups, k);
          fail(name, `amplifier 2^${k} can overflow int32 on output channel ${n} (worst case ${bound.toExponential(3)} >= 2^31); use --amplifier auto`);
        }
      }
    }
    shift.fill(k);
  }

  const iscales = new Int32Array(N * groups);
  for (let n = 0; n < N; n++) {
    const amp = 2 ** shift[n]!;
    for (let g = 0; g < groups; g++) iscales[n * groups + g] = rint(qw.scales[n * groups + g]! * amp);
  }
  return { iscales, shift };
}

/** Reject integer scales whose exact worst case can overflow int32 (files from anywhere). */
export function assertNoOverflow(is: IntegerScales, qw: QuantizedWeight, name: string): void {
  const bounds = exactBounds(is.iscales, qw);
  for (let n = 0; n < bounds.length; n++) {
    if (!(bounds[n]! < INT32_LIMIT)) fail(name, `integer scales of output channel ${n} can overflow int32 (worst case ${bounds[n]!.toExponential(3)} >= 2^31)`);
    if (is.shift[n]! < 0 || is.shift[n]! > MAX_SHIFT) fail(name, `shift ${is.shift[n]} of output channel ${n} outside 0..${MAX_SHIFT}`);
  }
}

/**
 * Reject integer scales that are not what this quantizer derives from the stored float scales
 * (files from anywhere): per group ŝ must equal rint(s·2^k) for the stored shift k (exactly: both
 * are integers computed the same way), and per channel k must be the shift `amplifier` chooses for
 * these scales and weights. A tampered shift, negated or rescaled ŝ, or edited s fails here.
 */
export function assertIntegerScalesMatch(is: IntegerScales, qw: QuantizedWeight, amplifier: Amplifier, name: string): void {
  const groups = qw.inFeatures / qw.groupSize;
  for (let n = 0; n < qw.outFeatures; n++) {
    const k = is.shift[n]!;
    const amp = 2 ** k;
    for (let g = 0; g < groups; g++) {
      const s = qw.scales[n * groups + g]!, hat = is.iscales[n * groups + g]!;
      const want = rint(s * amp);
      if (hat !== want) {
        fail(`${name}.iscales`, `output channel ${n} group ${g}: ŝ = ${hat} but the stored scale ${s} with shift ${k} gives rint(s·2^${k}) = ${want}`);
      }
    }
  }
  const derived = computeIntegerScales(qw, amplifier, name);
  for (let n = 0; n < qw.outFeatures; n++) {
    if (derived.shift[n] !== is.shift[n]) {
      fail(`${name}.shift`, `output channel ${n} has shift ${is.shift[n]}, but amplifier ${JSON.stringify(amplifier)} chooses ${derived.shift[n]} for the stored scales`);
    }
  }
}
