// GPTQ's factor on the GPU, in fp32: from the Gram matrix Σxᵀx on the device to U upper with
// H⁻¹ = UᵀU for H = P·(scale·Σxᵀx + dead fix + damp·I)·Pᵀ, what prepareHessian (src/quant/gptq.ts)
// computes in float64 on the CPU. The diagonal decides dead inputs, act-order and dampening on the
// host (diagonalPlan, shared with the CPU path); the matrix never leaves the device.
//
// Like linalg.ts, without forming H⁻¹: the index-reversed A = J·H·J is factored A = L·Lᵀ and
// inverted, X = L⁻¹, by the blocked steps of factor-steps.ts (diagonal blocks by gptq_chol_diag,
// the rest cuBLASLt GEMMs), and U = J·X·J.
import { fail } from '../../core/errors.ts';
import { diagonalPlan } from '../../quant/gptq.ts';
import type { DeviceBuffer, Gpu } from '../runtime.ts';
import { CHOL_BLOCK, type GptqKernels } from './gptq-kernels.ts';
import type { LtMatmul } from './lt-matmul.ts';
import { factorSteps, type Ref } from './factor-steps.ts';

export interface DeviceFactor {
  readonly K: number;
  readonly perm: Int32Array;
  readonly dead: Uint8Array;
  /** U upper, (P·H·Pᵀ)⁻¹ = UᵀU, [K, K] fp32 in permuted order */
  readonly u: DeviceBuffer;
  /** perm, its inverse (natural column → permuted position) and dead on the device */
  readonly permDev: DeviceBuffer;
  readonly invPermDev: DeviceBuffer;
  readonly deadDev: DeviceBuffer;
  free(): void;
}

export interface FactorContext { gpu: Gpu; kernels: GptqKernels; mm: LtMatmul }

const F32 = 4;

/** The factor of H = scale·gram (+ fixes), gram [K, K] fp32 on the device (left unchanged). */
export function factorOnDevice(ctx: FactorContext, gram: DeviceBuffer, K: number, scale: number,
  opts: { percdamp?: number; actOrder?: boolean; name?: string } = {}): DeviceFactor {
  const { gpu, kernels, mm } = ctx;
  const name = opts.name ?? 'gptq';
  if (gram.bytes < K * K * F32) fail(name, `Gram matrix holds ${gram.bytes} bytes, expected ${K}x${K} fp32`);
  const diagDev = gpu.alloc(K * F32);
  kernels.hessianDiag(gram, diagDev, K);
  const diag32 = gpu.download(diagDev, new Float32Array(K));
  diagDev.free();
  const s32 = Math.fround(scale);
  const plan = diagonalPlan(Float64Array.from(diag32, (d) => Math.fround(s32 * d)), { ...opts, name });
  const inv = new Int32Array(K);
  plan.perm.forEach((k, i) => { inv[k] = i; });
  const permDev = gpu.upload(plan.perm), invPermDev = gpu.upload(inv), deadDev = gpu.upload(plan.dead);

  const a = gpu.alloc(K * K * F32), x = gpu.alloc(K * K * F32);
  const bad = gpu.alloc(4);
  gpu.memset(bad, 0);
  gpu.memset(x, 0); // X = L⁻¹ stays zero above its diagonal
  kernels.prepareHessian(gram, a, permDev, deadDev, s32, Math.fround(plan.damp), K);
  const nb = CHOL_BLOCK;
  const panel = gpu.alloc(K * nb * F32);
  const bufs = { A: a, X: x, P: panel };
  const at = (r: Ref) => bufs[r.buf].ptr + BigInt((r.row * r.ld + r.col) * F32);
  try {
    for (const s of factorSteps(K, nb)) {
      if (s.op === 'chol') kernels.cholDiag(a, x, bad, K, s.j0, s.nb);
      else if (s.op === 'gemm') mm.run(s.g, at(s.a), at(s.b), at(s.c), s.alpha, s.beta);
      else kernels.copyBlock(at(s.src), s.src.ld, at(s.dst), s.dst.ld, s.rows, s.cols);
    }
    kernels.reverseUpper(x, a, K); // U = J·X·J, into A's memory
    const badRow = gpu.download(bad, new Int32Array(1))[0]!;
    if (badRow !== 0) fail(name, `matrix is not positive definite (pivot ${K - badRow} in the permuted order); increase the dampening`);
  } catch (e) {
    for (const d of [a, permDev, invPermDev, deadDev]) d.free();
    throw e;
  } finally {
    for (const d of [x, panel, bad]) d.free();
  }
  return {
    K, perm: plan.perm, dead: plan.dead, u: a, permDev, invPermDev, deadDev,
    free() { for (const d of [a, permDev, invPermDev, deadDev]) if (!d.freed) d.free(); },
  };
}
