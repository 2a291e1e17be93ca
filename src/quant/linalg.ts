// Float64 dense linear algebra for the calibration methods (row-major n×n Float64Array): the
// Cholesky factor GPTQ needs, H⁻¹ = Uᵀ·U with U upper triangular (what torch's
// cholesky(cholesky_inverse(cholesky(H)), upper=True) computes), without forming H⁻¹: factor H
// "upside down" as H = M·Mᵀ with M upper triangular (Cholesky of the index-reversed matrix); then
// H⁻¹ = M⁻ᵀ·M⁻¹, so U = M⁻¹ (upper, positive diagonal, hence the same unique factor).
// Large matrices go through a blocked version of the same (float64 GEMM tasks on the pool's threads).
import { fail } from '../core/errors.ts';
import { poolThreads, runTasks } from '../core/matmul-pool.ts';
import { TASK_PANEL64, TASK_SYRK64, TASK_TRINV64 } from '../core/pool-tasks.ts';
import { ptr, releaseScratch, scratchF32, scratchF64 } from '../core/wasm-heap.ts';
import { memTrace } from '../core/mem-trace.ts';

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

/** Block size of the blocked factorization; below BLOCKED_MIN the unblocked loops above are used. */
const NB = 64;
export const BLOCKED_MIN = 192;

/** U upper triangular with H⁻¹ = Uᵀ·U (H symmetric positive definite).
 *  `perm`: factor H_perm[i, j] = H[perm[i], perm[j]] instead, without forming it (the blocked path
 *  reads H straight into its scratch). `out`: U is written there (zeros below the diagonal); it may
 *  be `h` itself, which is read in full before U is written (one n×n float64 less). */
export function inverseCholeskyUpper(h: Float64Array, n: number, where = 'cholesky', perm?: Int32Array, out?: Float64Array): Float64Array {
  if (h.length !== n * n) fail(where, `matrix has ${h.length} values, expected ${n}x${n}`);
  if (perm && perm.length !== n) fail(where, `permutation has ${perm.length} entries, expected ${n}`);
  if (out && out.length !== n * n) fail(where, `output has ${out.length} values, expected ${n}x${n}`);
  if (n >= BLOCKED_MIN) return inverseCholeskyUpperBlocked(h, n, where, perm, out);
  let hp = h;
  if (perm) {
    hp = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) hp[i * n + j] = h[perm[i]! * n + perm[j]!]!;
  }
  const u = invertUpper(upperCholeskyUL(hp, n, where), n);
  if (!out) return u;
  out.set(u);
  return out;
}

/**
 * The same U by blocked float64 algorithms whose O(n³) parts run as mm64 tasks on the matmul
 * pool's threads (src/core/pool-tasks.ts): with J the index reversal, J·H·J = L·Lᵀ (L lower; then
 * M = J·L·J is the upside-down factor above) by a right-looking blocked Cholesky, X = L⁻¹ by
 * independent block columns, and U = M⁻¹ = J·X·J. Same math as the unblocked path, different
 * summation order (float64 rounding only). Heap: two n×n float64 scratch slots, given back before
 * returning (970 MB each at n = 11008).
 */
export function inverseCholeskyUpperBlocked(h: Float64Array, n: number, where = 'cholesky', perm?: Int32Array, out?: Float64Array): Float64Array {
  return factorBlocked(n, where, (a) => {
    // a's lower triangle = (J·H_perm·J)[i, j] = H[p(n−1−i), p(n−1−j)]
    for (let i = 0; i < n; i++) {
      const dst = i * n, ri = (perm ? perm[n - 1 - i]! : n - 1 - i) * n;
      if (perm) for (let j = 0; j <= i; j++) a[dst + j] = h[ri + perm[n - 1 - j]!]!;
      else for (let j = 0; j <= i; j++) a[dst + j] = h[ri + n - 1 - j]!;
    }
  }, () => out ?? new Float64Array(n * n));
}

/**
 * The blocked factorization with `fill` writing the lower triangle of J·H·J (in the factorization's
 * order) into its n×n scratch, and U written into `result()` (asked for once that scratch is given
 * back; zeros are written below the diagonal).
 */
export function factorBlocked(n: number, where: string, fill: (a: Float64Array) => void, result: () => Float64Array): Float64Array {
  const a = scratchF64('chol.a', n * n);
  fill(a);
  for (let j0 = 0; j0 < n; j0 += NB) {
    const j1 = Math.min(n, j0 + NB);
    // the diagonal block (its trailing updates are done): unblocked, in place
    for (let j = j0; j < j1; j++) {
      const rj = j * n;
      let d = a[rj + j]!;
      for (let c = j0; c < j; c++) d -= a[rj + c]! * a[rj + c]!;
      if (!(d > 0)) fail(where, `matrix is not positive definite (pivot ${n - 1 - j} = ${d}); increase the dampening`);
      a[rj + j] = Math.sqrt(d);
      for (let i = j + 1; i < j1; i++) {
        const ri = i * n;
        let s = a[ri + j]!;
        for (let c = j0; c < j; c++) s -= a[ri + c]! * a[rj + c]!;
        a[ri + j] = s / a[rj + j]!;
      }
    }
    if (j1 === n) break;
    runTasks(TASK_PANEL64, [ptr(a), n, j0, j1], n - j1, 16);
    runTasks(TASK_SYRK64, [ptr(a), n, j0, j1, NB], Math.ceil((n - j1) / NB), 1);
  }
  const xt = scratchF64('chol.xt', n * n); // Xᵀ, X = L⁻¹ (zeroed)
  const tmp = scratchF32('chol.tmp', 2 * NB * NB * poolThreads());
  runTasks(TASK_TRINV64, [ptr(a), ptr(xt), n, NB, ptr(tmp), NB * NB * 8], Math.ceil(n / NB), 1);
  memTrace(`${where} factored`);
  releaseScratch('chol.a'); // n×n float64: given back before U is allocated
  const u = result(); // U[r, c] = X[n−1−r, n−1−c] = Xᵀ[n−1−c, n−1−r]
  for (let r = 0; r < n; r++) {
    const o = r * n;
    u.fill(0, o, o + r);
    for (let c = r; c < n; c++) u[o + c] = xt[(n - 1 - c) * n + n - 1 - r]!;
  }
  releaseScratch('chol.xt'); // given back for the next large factorization or Gram (hessian.ts)
  return u;
}
