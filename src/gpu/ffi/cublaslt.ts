// Mechanical koffi declarations for cuBLASLt (libcublasLt.so), plus `check()`, which turns a
// cublasStatus_t other than CUBLAS_STATUS_SUCCESS into an error naming the call and the status.
// Descriptors are opaque koffi pointers; device pointers are uint64 (bigint on the JS side).
import koffi from 'koffi';
import { IntscaleError } from '../../core/errors.ts';
import { GpuCallError, type Handle, type Out } from './cuda.ts';
import { loadLibrary, type LibraryHandle } from './load.ts';

export const CUBLASLT_LIBRARY_NAMES = ['libcublasLt.so', 'libcublasLt.so.13', 'libcublasLt.so.12'];

// cudaDataType_t
export const CUDA_R_32F = 0;
export const CUDA_R_16F = 2;
export const CUDA_R_8I = 3;
export const CUDA_R_32I = 10;
// cublasComputeType_t
export const CUBLAS_COMPUTE_32F = 68;
export const CUBLAS_COMPUTE_32I = 72;
// cublasOperation_t
export const CUBLAS_OP_N = 0;
export const CUBLAS_OP_T = 1;
// cublasLtMatmulDescAttributes_t
export const CUBLASLT_MATMUL_DESC_TRANSA = 3;
export const CUBLASLT_MATMUL_DESC_TRANSB = 4;
// cublasLtMatmulPreferenceAttributes_t
export const CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1;
/** uint32 each: the least alignment of A, B, C, D's pointers the chosen algorithm may assume (default 256). */
export const CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5;
export const CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6;
export const CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7;
export const CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8;
/** sizeof(cublasLtMatmulHeuristicResult_t): algo (uint64[8]) + size_t + status + float + int[4]. */
export const HEURISTIC_RESULT_BYTES = 96;
export const HEURISTIC_ALGO_BYTES = 64;
export const HEURISTIC_STATE_OFFSET = 72;

export interface CublasLtApi {
  path: string;
  cublasLtGetVersion(): number;
  cublasLtGetStatusString(status: number): string;
  cublasLtCreate(out: Out<Handle>): number;
  cublasLtDestroy(handle: Handle): number;
  cublasLtMatmulDescCreate(out: Out<Handle>, computeType: number, scaleType: number): number;
  cublasLtMatmulDescDestroy(desc: Handle): number;
  cublasLtMatmulDescSetAttribute(desc: Handle, attr: number, value: Buffer, size: number): number;
  cublasLtMatrixLayoutCreate(out: Out<Handle>, type: number, rows: number, cols: number, ld: number): number;
  cublasLtMatrixLayoutDestroy(layout: Handle): number;
  cublasLtMatmulPreferenceCreate(out: Out<Handle>): number;
  cublasLtMatmulPreferenceDestroy(pref: Handle): number;
  cublasLtMatmulPreferenceSetAttribute(pref: Handle, attr: number, value: Buffer, size: number): number;
  cublasLtMatmulAlgoGetHeuristic(handle: Handle, desc: Handle, a: Handle, b: Handle, c: Handle, d: Handle,
    pref: Handle, requested: number, results: Buffer, returned: Out<number>): number;
  cublasLtMatmul(handle: Handle, desc: Handle, alpha: Buffer, a: bigint, aDesc: Handle, b: bigint, bDesc: Handle,
    beta: Buffer, c: bigint, cDesc: Handle, d: bigint, dDesc: Handle, algo: Buffer | null,
    workspace: bigint, workspaceBytes: number, stream: Handle): number;
}

let cached: { api: CublasLtApi } | { error: string; tried: string[] } | undefined;

/** Load cuBLASLt once; throws IntscaleError naming the paths tried when it is absent. */
export function cublasLt(): CublasLtApi {
  const r = tryCublasLt();
  if ('error' in r) throw new IntscaleError(r.error);
  return r.api;
}

export function tryCublasLt(): { api: CublasLtApi } | { error: string; tried: string[] } {
  cached ??= loadCublasLt();
  return cached;
}

function loadCublasLt(): { api: CublasLtApi } | { error: string; tried: string[] } {
  const found = loadLibrary(CUBLASLT_LIBRARY_NAMES);
  if (!found.ok) return { error: `cuBLASLt not found (tried ${found.tried.join(', ')})`, tried: found.tried };
  try {
    return { api: declare(found.lib, found.path) };
  } catch (err) {
    return { error: `cuBLASLt at ${found.path} lacks a needed function: ${(err as Error).message}`, tried: [found.path] };
  }
}

function declare(lib: LibraryHandle, path: string): CublasLtApi {
  const h = koffi.pointer('cublasLtHandle', koffi.opaque());
  const desc = koffi.pointer('cublasLtMatmulDesc', koffi.opaque());
  const layout = koffi.pointer('cublasLtMatrixLayout', koffi.opaque());
  const pref = koffi.pointer('cublasLtMatmulPreference', koffi.opaque());
  const stream = koffi.pointer('cublasStream', koffi.opaque());
  const out = (t: unknown) => koffi.out(koffi.pointer(t as string));
  const api = {
    path,
    cublasLtGetVersion: lib.func('cublasLtGetVersion', 'size_t', []),
    cublasLtGetStatusString: lib.func('cublasLtGetStatusString', 'const char *', ['int']),
    cublasLtCreate: lib.func('cublasLtCreate', 'int', [out(h)]),
    cublasLtDestroy: lib.func('cublasLtDestroy', 'int', [h]),
    cublasLtMatmulDescCreate: lib.func('cublasLtMatmulDescCreate', 'int', [out(desc), 'int', 'int']),
    cublasLtMatmulDescDestroy: lib.func('cublasLtMatmulDescDestroy', 'int', [desc]),
    cublasLtMatmulDescSetAttribute: lib.func('cublasLtMatmulDescSetAttribute', 'int',
      [desc, 'int', 'const void *', 'size_t']),
    cublasLtMatrixLayoutCreate: lib.func('cublasLtMatrixLayoutCreate', 'int',
      [out(layout), 'int', 'uint64_t', 'uint64_t', 'int64_t']),
    cublasLtMatrixLayoutDestroy: lib.func('cublasLtMatrixLayoutDestroy', 'int', [layout]),
    cublasLtMatmulPreferenceCreate: lib.func('cublasLtMatmulPreferenceCreate', 'int', [out(pref)]),
    cublasLtMatmulPreferenceDestroy: lib.func('cublasLtMatmulPreferenceDestroy', 'int', [pref]),
    cublasLtMatmulPreferenceSetAttribute: lib.func('cublasLtMatmulPreferenceSetAttribute', 'int',
      [pref, 'int', 'const void *', 'size_t']),
    cublasLtMatmulAlgoGetHeuristic: lib.func('cublasLtMatmulAlgoGetHeuristic', 'int',
      [h, desc, layout, layout, layout, layout, pref, 'int', 'void *', out('int')]),
    cublasLtMatmul: lib.func('cublasLtMatmul', 'int',
      [h, desc, 'const void *', 'uint64_t', layout, 'uint64_t', layout, 'const void *', 'uint64_t', layout,
        'uint64_t', layout, 'const void *', 'uint64_t', 'size_t', stream]),
  };
  return api as unknown as CublasLtApi;
}

/** cuBLASLt's version as "major.minor.patch" (cublasLtGetVersion encodes M*10000 + m*100 + p). */
export function cublasLtVersionString(api: CublasLtApi): string {
  const v = Number(api.cublasLtGetVersion());
  return `${Math.floor(v / 10000)}.${Math.floor(v / 100) % 100}.${v % 100}`;
}

/** Throw GpuCallError unless `status` is CUBLAS_STATUS_SUCCESS (0). */
export function check(status: number, call: string): void {
  if (status === 0) return;
  const text = cached && 'api' in cached ? cached.api.cublasLtGetStatusString(status) : `cublasStatus ${status}`;
  throw new GpuCallError(call, status, text);
}
