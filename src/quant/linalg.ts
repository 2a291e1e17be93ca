// Float64 dense linear algebra for the calibration methods (row-major n×n Float64Array): the
// Cholesky factor GPTQ needs, H⁻¹ = Uᵀ·U with U upper triangular (what torch's
// cholesky(cholesky_inverse(cholesky(H)), upper=True) computes), without forming H⁻¹: factor H
// "upside down" as H = M·Mᵀ with M upper triangular (Cholesky of the index-reversed matrix); then
// H⁻¹ = M⁻ᵀ·M⁻¹, so U = M⁻¹ (upper, positive diagonal, hence the same unique factor).
import { fail } from '../core/errors.ts';

/** M upper triangular with A = M·Mᵀ (A symmetric positive definite). Fails on a non-PD matrix. */
export function upperCholeskyUL(a: Float64Array, n: number, where = 'cholesky'): Float64Array {
  const m = new Float64Array(n * n);
  for (let j = n - 1; j >= 0; j--) {
    const rj = j * n;
    let d = a[rj + j]!;
    for (let k = j + 1; k < n; k++) d -= m[rj + k]! * m[rj + k]!;
    if (!(d > 0)) fail(where, `matrix is not positive definite (pivot ${j} = ${d}); increase the dampening`);
    const mjj = Math.sqrt(d);
    m[rj + j] = mjj;
    for (let i = 0; i < j; i++) {
      const ri = i * n;
      let s = a[ri + j]!;
      for (let k = j + 1; k < n; k++) s -= m[ri + k]! * m[rj + k]!;
      m[ri + j] = s / mjj;
    }
  }
  return m;
}

/** Inverse of an upper-triangular matrix (upper triangular). */
export function invertUpper(m: Float64Array, n: number): Float64Array {
  const u = new Float64Array(n * n);
  const row = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    const ri = i * n;
    row.fill(0, i, n);
    // Σ_k M[i,k]·U[k,j] for k > i (U[k, j] = 0 for j < k)
    for (let k = i + 1; k < n; k++) {
      const mik = m[ri + k]!;
      if (mik === 0) continue;
      const rk = k * n;
      for (let j = k; j < n; j++) row[j]! += mik * u[rk + j]!;
    }
    const inv = 1 / m[ri + i]!;
    u[ri + i] = inv;
    for (let j = i + 1; j < n; j++) u[ri + j] = -row[j]! * inv;
  }
  return u;
}

/** U upper triangular with H⁻¹ = Uᵀ·U (H symmetric positive definite). */
export function inverseCholeskyUpper(h: Float64Array, n: number, where = 'cholesky'): Float64Array {
  return invertUpper(upperCholeskyUL(h, n, where), n);
}
