// The blocked factorization behind GPTQ's U on the GPU, as data: the sequence of steps that turns
// A = J·H·J (H the prepared Hessian, J the index reversal) into L (A = L·Lᵀ, lower, in A) and
// X = L⁻¹ (lower, in X, zeroed beforehand), with a [K, nb] scratch P. factor.ts runs the steps on
// the GPU (chol: gptq_chol_diag, gemm: cuBLASLt, copy: gptq_copy_block); the CPU tests run them in
// float64 and compare U = J·X·J with linalg.ts's.
//   Cholesky, right-looking, per block column [j0, j1): chol factors the diagonal block and writes
//   L₁₁⁻¹ into X's diagonal block; P = A₂₁·L₁₁⁻ᵀ; A₂₂ −= P·Pᵀ; A₂₁ = P.
//   Inverse, per block row I = [r0, r0+b) after the first: P = L[I, :r0]·X[:r0, :r0];
//   X[I, :r0] = −L_II⁻¹·P (L_II⁻¹ is X's diagonal block).
import type { RowMajorGemm } from './lt-matmul.ts';

/** A matrix operand: element (row, col) of buffer `buf` (leading dimension `ld`). */
export interface Ref { buf: 'A' | 'X' | 'P'; row: number; col: number; ld: number }

export type FactorStep =
  | { op: 'chol'; j0: number; nb: number }
  | { op: 'gemm'; g: RowMajorGemm; a: Ref; b: Ref; c: Ref; alpha: number; beta: number }
  | { op: 'copy'; src: Ref; dst: Ref; rows: number; cols: number };

export function factorSteps(K: number, nb: number): FactorStep[] {
  const steps: FactorStep[] = [];
  const A = (row: number, col: number): Ref => ({ buf: 'A', row, col, ld: K });
  const X = (row: number, col: number): Ref => ({ buf: 'X', row, col, ld: K });
  const P = (ld: number): Ref => ({ buf: 'P', row: 0, col: 0, ld });
  const gemm = (m: number, n: number, k: number, transB: boolean, a: Ref, b: Ref, c: Ref, alpha: number, beta: number): FactorStep =>
    ({ op: 'gemm', g: { m, n, k, transA: false, transB, lda: a.ld, ldb: b.ld, ldc: c.ld, inType: 'f32' }, a, b, c, alpha, beta });
  for (let j0 = 0; j0 < K; j0 += nb) {
    const b = Math.min(nb, K - j0), j1 = j0 + b, r = K - j1;
    steps.push({ op: 'chol', j0, nb: b });
    if (r === 0) break;
    steps.push(gemm(r, b, b, true, A(j1, j0), X(j0, j0), P(b), 1, 0));
    steps.push(gemm(r, r, b, true, P(b), P(b), A(j1, j1), -1, 1));
    steps.push({ op: 'copy', src: P(b), dst: A(j1, j0), rows: r, cols: b });
  }
  for (let r0 = nb; r0 < K; r0 += nb) {
    const b = Math.min(nb, K - r0);
    steps.push(gemm(b, r0, r0, false, A(r0, 0), X(0, 0), P(r0), 1, 0));
    steps.push(gemm(b, r0, b, false, X(r0, r0), P(r0), X(r0, 0), -1, 0));
  }
  return steps;
}
