// Row-major GEMMs with fp32 output through cuBLASLt, for GPTQ's large products (src/gpu/gptq/):
// C = α·op(A)·op(B) + β·C with A, B fp32 or fp16, C fp32, fp32 compute (no TF32), any leading
// dimensions and pointer offsets (each pointer's alignment goes to the heuristic, so sub-matrices
// at odd offsets get an algorithm that allows them). One plan (descriptors + algorithm) per distinct
// call shape, cached for the object's life. Runs on the legacy default stream, in order with the
// GPTQ kernels. (gemm-baselines.ts is the engine's fixed-shape Y = X·Wᵀ; this is the general form.)
//
// Row-major → column-major: a row-major [r, c] matrix with leading dimension ld is the column-major
// [c, r] one with the same ld, so C = op(A)·op(B) is asked as Cᵀ = op(B)ᵀ·op(A)ᵀ (columnMajorCall).
import { fail } from '../../core/errors.ts';
import type { Handle, Out } from '../ffi/cuda.ts';
import {
  CUBLASLT_MATMUL_DESC_TRANSA, CUBLASLT_MATMUL_DESC_TRANSB, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
  CUBLAS_COMPUTE_32F, CUBLAS_OP_N, CUBLAS_OP_T, CUDA_R_16F, CUDA_R_32F,
  HEURISTIC_ALGO_BYTES, HEURISTIC_RESULT_BYTES, HEURISTIC_STATE_OFFSET, check, cublasLt, type CublasLtApi,
} from '../ffi/cublaslt.ts';
import { WORKSPACE_BYTES } from '../gemm-baselines.ts';
import type { DeviceBuffer, Gpu } from '../runtime.ts';

/** C[m, n] = α·op(A)·op(B) + β·C, row-major: op(A) is [m, k] (A stored [k, m] when transA), op(B) [k, n] (B stored [n, k] when transB). */
export interface RowMajorGemm {
  m: number; n: number; k: number;
  transA: boolean; transB: boolean;
  lda: number; ldb: number; ldc: number;
  /** element type of A and B (C is fp32) */
  inType: 'f32' | 'f16';
}

/** One column-major operand of the cuBLASLt call: its op and its stored layout. */
export interface LtOperand { op: 'N' | 'T'; rows: number; cols: number; ld: number }

/** The column-major call computing a row-major GEMM: D' = op(A')·op(B'), A' = the row-major B, B' = the row-major A. */
export interface LtCall { m: number; n: number; k: number; a: LtOperand; b: LtOperand; c: { rows: number; cols: number; ld: number } }

export function columnMajorCall(g: RowMajorGemm): LtCall {
  return {
    m: g.n, n: g.m, k: g.k,
    a: g.transB ? { op: 'T', rows: g.k, cols: g.n, ld: g.ldb } : { op: 'N', rows: g.n, cols: g.k, ld: g.ldb },
    b: g.transA ? { op: 'T', rows: g.m, cols: g.k, ld: g.lda } : { op: 'N', rows: g.k, cols: g.m, ld: g.lda },
    c: { rows: g.n, cols: g.m, ld: g.ldc },
  };
}

/** Largest power of two ≤ 256 dividing the address (the alignment cuBLASLt may assume). */
export function alignmentOf(ptr: bigint): number {
  let a = 1;
  while (a < 256 && ptr % BigInt(2 * a) === 0n) a *= 2;
  return a;
}

interface Plan { desc: Handle; a: Handle; b: Handle; c: Handle; algo: Buffer }

export class LtMatmul {
  private readonly api: CublasLtApi = cublasLt();
  private readonly handle: Handle;
  private readonly plans = new Map<string, Plan>();
  private readonly workspace: DeviceBuffer;
  private readonly alpha = Buffer.alloc(4);
  private readonly beta = Buffer.alloc(4);

  constructor(gpu: Gpu) {
    const out: Out<Handle> = [null];
    check(this.api.cublasLtCreate(out), 'cublasLtCreate');
    this.handle = out[0];
    this.workspace = gpu.alloc(WORKSPACE_BYTES);
  }

  /** C = α·op(A)·op(B) + β·C (device addresses); nothing to do when m, n or k is 0. */
  run(g: RowMajorGemm, a: bigint, b: bigint, c: bigint, alpha: number, beta: number): void {
    for (const [name, v] of [['m', g.m], ['n', g.n], ['k', g.k]] as const) if (!Number.isInteger(v) || v < 0) fail('LtMatmul', `bad ${name} = ${v}`);
    if (g.m === 0 || g.n === 0) return;
    if (g.k === 0) fail('LtMatmul', 'k = 0 (C would only be scaled)');
    const call = columnMajorCall(g);
    // the column-major call reads A' = B and B' = A
    const aligns = [alignmentOf(b), alignmentOf(a), alignmentOf(c)] as const;
    const key = JSON.stringify([call, g.inType, aligns]);
    let plan = this.plans.get(key);
    if (!plan) {
      plan = this.plan(call, g.inType, aligns, key);
      this.plans.set(key, plan);
    }
    this.alpha.writeFloatLE(alpha);
    this.beta.writeFloatLE(beta);
    check(this.api.cublasLtMatmul(this.handle, plan.desc, this.alpha, b, plan.a, a, plan.b, this.beta, c, plan.c, c, plan.c,
      plan.algo, this.workspace.ptr, WORKSPACE_BYTES, null), `cublasLtMatmul(${key})`);
  }

  private plan(call: LtCall, inType: 'f32' | 'f16', [alA, alB, alC]: readonly [number, number, number], key: string): Plan {
    const api = this.api;
    const desc: Out<Handle> = [null];
    check(api.cublasLtMatmulDescCreate(desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), 'cublasLtMatmulDescCreate');
    const setI32 = (attr: number, v: number) => {
      const buf = Buffer.alloc(4);
      buf.writeInt32LE(v);
      check(api.cublasLtMatmulDescSetAttribute(desc[0], attr, buf, 4), `cublasLtMatmulDescSetAttribute(${attr})`);
    };
    setI32(CUBLASLT_MATMUL_DESC_TRANSA, call.a.op === 'T' ? CUBLAS_OP_T : CUBLAS_OP_N);
    setI32(CUBLASLT_MATMUL_DESC_TRANSB, call.b.op === 'T' ? CUBLAS_OP_T : CUBLAS_OP_N);
    const layout = (type: number, rows: number, cols: number, ld: number) => {
      const out: Out<Handle> = [null];
      check(api.cublasLtMatrixLayoutCreate(out, type, rows, cols, ld), `cublasLtMatrixLayoutCreate(${rows}x${cols}, ld ${ld})`);
      return out[0];
    };
    const t = inType === 'f16' ? CUDA_R_16F : CUDA_R_32F;
    const a = layout(t, call.a.rows, call.a.cols, call.a.ld), b = layout(t, call.b.rows, call.b.cols, call.b.ld);
    const c = layout(CUDA_R_32F, call.c.rows, call.c.cols, call.c.ld);
    const pref: Out<Handle> = [null];
    check(api.cublasLtMatmulPreferenceCreate(pref), 'cublasLtMatmulPreferenceCreate');
    const results = Buffer.alloc(HEURISTIC_RESULT_BYTES * 8);
    const count: Out<number> = [null];
    try {
      const u64 = Buffer.alloc(8);
      u64.writeBigUInt64LE(BigInt(WORKSPACE_BYTES));
      check(api.cublasLtMatmulPreferenceSetAttribute(pref[0], CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, u64, 8), 'preference(max workspace)');
      for (const [attr, v] of [[CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alA], [CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alB],
        [CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alC], [CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alC]] as const) {
        const u32 = Buffer.alloc(4);
        u32.writeUInt32LE(v);
        check(api.cublasLtMatmulPreferenceSetAttribute(pref[0], attr, u32, 4), `preference(alignment ${attr})`);
      }
      check(api.cublasLtMatmulAlgoGetHeuristic(this.handle, desc[0], a, b, c, c, pref[0], 8, results, count), `cublasLtMatmulAlgoGetHeuristic(${key})`);
    } finally {
      api.cublasLtMatmulPreferenceDestroy(pref[0]);
    }
    if (!count[0] || results.readInt32LE(HEURISTIC_STATE_OFFSET) !== 0) fail(`cublasLtMatmulAlgoGetHeuristic(${key})`, 'no algorithm for this shape');
    return { desc: desc[0], a, b, c, algo: Buffer.from(results.subarray(0, HEURISTIC_ALGO_BYTES)) };
  }

  destroy(): void {
    const api = this.api;
    for (const p of this.plans.values()) {
      for (const l of [p.a, p.b, p.c]) check(api.cublasLtMatrixLayoutDestroy(l), 'cublasLtMatrixLayoutDestroy');
      check(api.cublasLtMatmulDescDestroy(p.desc), 'cublasLtMatmulDescDestroy');
    }
    this.plans.clear();
    check(api.cublasLtDestroy(this.handle), 'cublasLtDestroy');
    this.workspace.free();
  }
}
