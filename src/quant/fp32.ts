// Exact scalar arithmetic the quantization spec is written in: round half to even (`rint`) and a
// correctly rounded fp32 fused multiply-add, both on JS doubles (no native fp32 FMA in JS).

/** Round half to even, like C's `rint`, `torch.round` and CUDA's `__float2int_rn`. */
export function rint(v: number): number {
  const r = Math.round(v); // rounds halves toward +infinity
  if (r - v === 0.5 && r % 2 !== 0) return r - 1;
  return r;
}

/** clamp(rint(v), lo, hi). */
export function rintClamp(v: number, lo: number, hi: number): number {
  const r = rint(v);
  return r < lo ? lo : r > hi ? hi : r;
}

/**
 * fp32 fma(a, b, c) = fp32(a·b + c) rounded once, for fp32 inputs a, b, c.
 * a·b is exact in a double (≤ 48 significant bits); the sum a·b + c is rounded to double and then
 * to fp32. That double rounding can only go wrong when the double sum lands exactly on a midpoint
 * between two fp32 values while the exact sum does not; then the TwoSum error term decides.
 */
export function fmaF32(a: number, b: number, c: number): number {
  const p = a * b;
  const r = p + c;
  const f = Math.fround(r);
  const d = r - f; // exact
  if (d === 0) return f;
  const other = f + 2 * d; // the neighbouring fp32 iff r is a midpoint
  if (Math.fround(other) !== other) return f;
  // r is a midpoint: the rounding error of p + c says which side the exact sum lies on.
  const bb = r - p;
  const err = (p - (r - bb)) + (c - bb);
  if (err === 0) return f; // exact tie: f is already the even one
  const towardOther = (err > 0) === (other > f);
  return towardOther ? other : f;
}
