// Typed launchers of src/gpu/kernels/gptq.cu (compiled once per process by NVRTC): each takes
// device pointers and sizes in the order of the kernel's documented ABI and checks the limits it
// states. Every launch is asynchronous on the legacy default stream.
import { fail } from '../../core/errors.ts';
import type { DeviceBuffer, Gpu, Kernel, KernelArg } from '../runtime.ts';

export type Ptr = DeviceBuffer | bigint;
const p = (b: Ptr): KernelArg => ({ ptr: b });
const i32 = (v: number): KernelArg => ({ i32: v });
const f32 = (v: number): KernelArg => ({ f32: v });
const blocks = (n: number, per: number) => Math.max(1, Math.ceil(n / per));

/** Columns per block of the column loop (gptq_block holds them in registers, 4 per lane). */
export const GPTQ_MAX_BLOCK = 128;
/** Block size of the blocked Cholesky / triangular inverse (gptq_chol_diag's limit is 128). */
export const CHOL_BLOCK = 128;

const NAMES = ['gptq_hessian_diag', 'gptq_prepare_hessian', 'gptq_chol_diag', 'gptq_copy_block', 'gptq_reverse_upper',
  'gptq_permute_weights', 'gptq_static_scales', 'gptq_block', 'gptq_unpermute_q'] as const;

export class GptqKernels {
  private readonly k = {} as Record<(typeof NAMES)[number], Kernel>;

  constructor(gpu: Gpu) {
    const mod = gpu.compile('src/gpu/kernels/gptq.cu');
    for (const n of NAMES) this.k[n] = mod.fn(n);
  }

  hessianDiag(h: Ptr, diag: Ptr, K: number): void {
    this.k.gptq_hessian_diag.launch({ grid: blocks(K, 256), block: 256 }, [p(h), p(diag), i32(K)]);
  }

  /** A = J·P·(scale·H)·Pᵀ·J with the dead fix and + damp on the diagonal. */
  prepareHessian(h: Ptr, a: Ptr, perm: Ptr, dead: Ptr, scale: number, damp: number, K: number): void {
    this.k.gptq_prepare_hessian.launch({ grid: blocks(K * K, 256), block: 256 }, [p(h), p(a), p(perm), p(dead), f32(scale), f32(damp), i32(K)]);
  }

  cholDiag(a: Ptr, x: Ptr, bad: Ptr, K: number, j0: number, nb: number): void {
    if (nb < 1 || nb > CHOL_BLOCK) fail('gptq_chol_diag', `block of ${nb} outside 1..${CHOL_BLOCK}`);
    this.k.gptq_chol_diag.launch({ grid: 1, block: 512, smem: 2 * nb * (nb + 1) * 4 }, [p(a), p(x), p(bad), i32(K), i32(j0), i32(nb)]);
  }

  copyBlock(src: Ptr, lds: number, dst: Ptr, ldd: number, rows: number, cols: number): void {
    if (rows * cols === 0) return;
    this.k.gptq_copy_block.launch({ grid: blocks(rows * cols, 256), block: 256 }, [p(src), i32(lds), p(dst), i32(ldd), i32(rows), i32(cols)]);
  }

  reverseUpper(x: Ptr, u: Ptr, K: number): void {
    this.k.gptq_reverse_upper.launch({ grid: blocks(K * K, 256), block: 256 }, [p(x), p(u), i32(K)]);
  }

  permuteWeights(w: Ptr, wF16: boolean, wp: Ptr, perm: Ptr, dead: Ptr, bad: Ptr, N: number, K: number): void {
    this.k.gptq_permute_weights.launch({ grid: blocks(N * K, 256), block: 256 }, [p(w), i32(wF16 ? 1 : 0), p(wp), p(perm), p(dead), p(bad), i32(N), i32(K)]);
  }

  staticScales(wp: Ptr, invPerm: Ptr, scales: Ptr, bad: Ptr, N: number, K: number, G: number): void {
    this.k.gptq_static_scales.launch({ grid: blocks(N * (K / G), 8), block: 256 }, [p(wp), p(invPerm), p(scales), p(bad), i32(N), i32(K), i32(G)]);
  }

  block(wp: Ptr, u: Ptr, err: Ptr, scales: Ptr, qp: Ptr, loss: Ptr, perm: Ptr, bad: Ptr,
    N: number, K: number, G: number, i1: number, cnt: number, actOrder: boolean): void {
    if (cnt < 1 || cnt > GPTQ_MAX_BLOCK) fail('gptq_block', `block of ${cnt} columns outside 1..${GPTQ_MAX_BLOCK}`);
    this.k.gptq_block.launch({ grid: blocks(N, 8), block: 256, smem: cnt * GPTQ_MAX_BLOCK * 4 },
      [p(wp), p(u), p(err), p(scales), p(qp), p(loss), p(perm), p(bad), i32(N), i32(K), i32(G), i32(i1), i32(cnt), i32(actOrder ? 1 : 0)]);
  }

  unpermuteQ(qp: Ptr, q: Ptr, perm: Ptr, N: number, K: number): void {
    this.k.gptq_unpermute_q.launch({ grid: blocks(N * K, 256), block: 256 }, [p(qp), p(q), p(perm), i32(N), i32(K)]);
  }
}
