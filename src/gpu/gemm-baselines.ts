// cuBLASLt GEMMs: fp16 (fp16 in/out, fp32 accumulate: what torch.matmul on fp16 runs; the engine's
// FP16 linears, with an optional residual C), fp16f32 (fp32 out: the engine's LM head) and
// int8 (int8 in, int32 out, int32 accumulate: what torch._int_mm runs), both Y[M,N] = X[M,K]·Wᵀ
// with X, W (= [N,K], Hugging Face layout) and Y row-major.
//
// Row-major via the transpose trick: cuBLASLt is column-major, and a row-major [R,C] matrix is the
// same bytes as a column-major [C,R] one. So we ask cuBLASLt for Yᵀ = W·Xᵀ in column-major terms:
//   A = W bytes, column-major [K,N] (ld K), op T  → [N,K]
//   B = X bytes, column-major [K,M] (ld K), op N  → [K,M]
//   D = Y bytes, column-major [N,M] (ld N)        = Yᵀ, i.e. row-major Y[M,N]
// with m = N, n = M, k = K. That is the "TN" form cuBLASLt's int8 tensor-core kernels require.
// The algorithm comes from cublasLtMatmulAlgoGetHeuristic (best of the list) with a 32 MiB workspace.
import { fail } from '../core/errors.ts';
import type { Handle, Out } from './ffi/cuda.ts';
import {
  CUBLASLT_MATMUL_DESC_TRANSA, CUBLASLT_MATMUL_DESC_TRANSB, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
  CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32I, CUBLAS_OP_N, CUBLAS_OP_T, CUDA_R_16F, CUDA_R_32F, CUDA_R_32I, CUDA_R_8I,
  HEURISTIC_ALGO_BYTES, HEURISTIC_RESULT_BYTES, HEURISTIC_STATE_OFFSET, check, cublasLt, type CublasLtApi,
} from './ffi/cublaslt.ts';
import type { DeviceBuffer, Gpu, Stream } from './runtime.ts';

export const WORKSPACE_BYTES = 32 << 20;

/** fp16: fp16 in/out; fp16f32: fp16 in, fp32 out (the engine's LM head); int8: int8 in, int32 out. */
export type BaselineKind = 'fp16' | 'fp16f32' | 'int8';

interface KindInfo {
  /** Element types of A/B and of C/D (cudaDataType), compute and scale types. */
  inType: number; outType: number; compute: number; scaleType: number;
  inBytes: number; outBytes: number;
}

const KINDS: Record<BaselineKind, KindInfo> = {
  fp16: { inType: CUDA_R_16F, outType: CUDA_R_16F, compute: CUBLAS_COMPUTE_32F, scaleType: CUDA_R_32F, inBytes: 2, outBytes: 2 },
  fp16f32: { inType: CUDA_R_16F, outType: CUDA_R_32F, compute: CUBLAS_COMPUTE_32F, scaleType: CUDA_R_32F, inBytes: 2, outBytes: 4 },
  int8: { inType: CUDA_R_8I, outType: CUDA_R_32I, compute: CUBLAS_COMPUTE_32I, scaleType: CUDA_R_32I, inBytes: 1, outBytes: 4 },
};

let sharedHandle: Handle | undefined;
function handle(api: CublasLtApi): Handle {
  if (sharedHandle === undefined) {
    const out: Out<Handle> = [null];
    check(api.cublasLtCreate(out), 'cublasLtCreate');
    sharedHandle = out[0];
  }
  return sharedHandle;
}

/** One planned cuBLASLt GEMM of a fixed kind and shape: descriptors + chosen algorithm + workspace. */
export class CublasLtGemm {
  readonly inBytes: number;
  readonly outBytes: number;
  private readonly api = cublasLt();
  private readonly desc: Handle;
  private readonly layouts: { a: Handle; b: Handle; d: Handle };
  private readonly algo: Buffer;
  private readonly workspace: DeviceBuffer;
  private readonly ownsWorkspace: boolean;
  private readonly alpha: Buffer;
  private readonly beta: Buffer;
  private readonly betaOne: Buffer;

  /** `workspace` (≥ WORKSPACE_BYTES): shared by GEMMs that run in one stream's order; default: its own. */
  constructor(gpu: Gpu, readonly kind: BaselineKind, readonly M: number, readonly N: number, readonly K: number,
    opts: { workspace?: DeviceBuffer } = {}) {
    for (const [n, v] of [['M', M], ['N', N], ['K', K]] as const) {
      if (!Number.isInteger(v) || v < 1) fail('CublasLtGemm', `bad ${n} = ${v}`);
    }
    const info = KINDS[kind];
    this.inBytes = info.inBytes;
    this.outBytes = info.outBytes;
    const api = this.api;
    const h = handle(api);
    const desc: Out<Handle> = [null];
    check(api.cublasLtMatmulDescCreate(desc, info.compute, info.scaleType), 'cublasLtMatmulDescCreate');
    this.desc = desc[0];
    setI32(api, this.desc, CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T);
    setI32(api, this.desc, CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N);
    const layout = (type: number, rows: number, cols: number, ld: number) => {
      const out: Out<Handle> = [null];
      check(api.cublasLtMatrixLayoutCreate(out, type, rows, cols, ld), `cublasLtMatrixLayoutCreate(${rows}x${cols})`);
      return out[0];
    };
    this.layouts = { a: layout(info.inType, K, N, K), b: layout(info.inType, K, M, K), d: layout(info.outType, N, M, N) };

    const pref: Out<Handle> = [null];
    check(api.cublasLtMatmulPreferenceCreate(pref), 'cublasLtMatmulPreferenceCreate');
    const ws = Buffer.alloc(8);
    ws.writeBigUInt64LE(BigInt(WORKSPACE_BYTES));
    check(api.cublasLtMatmulPreferenceSetAttribute(pref[0], CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, ws, 8),
      'cublasLtMatmulPreferenceSetAttribute(max workspace)');
    const results = Buffer.alloc(HEURISTIC_RESULT_BYTES * 8);
    const count: Out<number> = [null];
    const where = `cublasLtMatmulAlgoGetHeuristic(${kind}, M=${M} N=${N} K=${K})`;
    try {
      check(api.cublasLtMatmulAlgoGetHeuristic(h, this.desc, this.layouts.a, this.layouts.b, this.layouts.d,
        this.layouts.d, pref[0], 8, results, count), where);
    } finally {
      api.cublasLtMatmulPreferenceDestroy(pref[0]);
    }
    if (!count[0] || results.readInt32LE(HEURISTIC_STATE_OFFSET) !== 0) fail(where, 'no algorithm for this shape');
    this.algo = Buffer.from(results.subarray(0, HEURISTIC_ALGO_BYTES));
    if (opts.workspace && opts.workspace.bytes < WORKSPACE_BYTES) fail('CublasLtGemm', `shared workspace of ${opts.workspace.bytes} bytes < ${WORKSPACE_BYTES}`);
    this.ownsWorkspace = !opts.workspace;
    this.workspace = opts.workspace ?? gpu.alloc(WORKSPACE_BYTES);
    this.alpha = Buffer.alloc(4);
    this.beta = Buffer.alloc(4);
    this.betaOne = Buffer.alloc(4);
    if (kind === 'int8') { this.alpha.writeInt32LE(1); this.betaOne.writeInt32LE(1); }
    else { this.alpha.writeFloatLE(1); this.betaOne.writeFloatLE(1); }
  }

  /** Bytes of X, W and Y this GEMM reads/writes. */
  get bytes(): { x: number; w: number; y: number } {
    return { x: this.M * this.K * this.inBytes, w: this.N * this.K * this.inBytes, y: this.M * this.N * this.outBytes };
  }

  /**
   * Y = X·Wᵀ (+ residual: Y = X·Wᵀ + R, R of Y's type and shape, may be Y itself), asynchronous on
   * `stream`, capturable in a CUDA graph.
   */
  run(x: DeviceBuffer | bigint, w: DeviceBuffer | bigint, y: DeviceBuffer | bigint, stream?: Stream, residual?: DeviceBuffer | bigint): void {
    const sizes = this.bytes;
    for (const [name, buf, need] of [['X', x, sizes.x], ['W', w, sizes.w], ['Y', y, sizes.y]] as const) {
      if (typeof buf !== 'bigint' && buf.bytes < need) fail('CublasLtGemm.run', `${name} holds ${buf.bytes} bytes, needs ${need}`);
    }
    const p = (b: DeviceBuffer | bigint) => (typeof b === 'bigint' ? b : b.ptr);
    const api = this.api;
    const c = residual ?? y;
    check(api.cublasLtMatmul(handle(api), this.desc, this.alpha, p(w), this.layouts.a, p(x), this.layouts.b,
      residual ? this.betaOne : this.beta, p(c), this.layouts.d, p(y), this.layouts.d, this.algo, this.workspace.ptr,
      WORKSPACE_BYTES, stream?.handle ?? null),
    `cublasLtMatmul(${this.kind}, M=${this.M} N=${this.N} K=${this.K})`);
  }

  destroy(): void {
    const api = this.api;
    for (const l of Object.values(this.layouts)) check(api.cublasLtMatrixLayoutDestroy(l), 'cublasLtMatrixLayoutDestroy');
    check(api.cublasLtMatmulDescDestroy(this.desc), 'cublasLtMatmulDescDestroy');
    if (this.ownsWorkspace) this.workspace.free();
  }
}

function setI32(api: CublasLtApi, desc: Handle, attr: number, value: number): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value);
  check(api.cublasLtMatmulDescSetAttribute(desc, attr, b, 4), `cublasLtMatmulDescSetAttribute(${attr})`);
}

