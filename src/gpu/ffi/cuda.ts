// Mechanical koffi declarations for the CUDA driver API (libcuda.so.1), plus `check()`, which
// turns a CUresult other than CUDA_SUCCESS into an error naming the call and the status.
// Handles (CUcontext, CUmodule, CUfunction, CUstream, CUevent, CUgraph, CUgraphExec) are opaque
// koffi pointers; CUdeviceptr is a uint64, carried as bigint on the JS side.
import koffi from 'koffi';
import { IntscaleError } from '../../core/errors.ts';
import { funcAny, loadLibrary, type LibraryHandle } from './load.ts';

export const CUDA_LIBRARY_NAMES = ['libcuda.so.1', 'libcuda.so'];

/** An opaque handle as koffi hands it back (pass it back unchanged). */
export type Handle = unknown;
/** One-element array koffi fills for an output parameter. */
export type Out<T> = [T | null];

// CUdevice_attribute values used here.
export const CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 1;
export const CU_DEVICE_ATTRIBUTE_CLOCK_RATE = 13;
export const CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
export const CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE = 36;
export const CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH = 37;
export const CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE = 38;
export const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
export const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
export const CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
// CUfunction_attribute values used here.
export const CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0;
export const CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES = 1;
export const CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES = 3;
export const CU_FUNC_ATTRIBUTE_NUM_REGS = 4;
export const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
// Flags.
export const CU_STREAM_NON_BLOCKING = 1;
export const CU_EVENT_DEFAULT = 0;
export const CU_STREAM_CAPTURE_MODE_RELAXED = 2;

export interface CudaApi {
  path: string;
  cuInit(flags: number): number;
  cuDriverGetVersion(out: Out<number>): number;
  cuDeviceGetCount(out: Out<number>): number;
  cuDeviceGet(out: Out<number>, ordinal: number): number;
  cuDeviceGetName(buf: Buffer, len: number, dev: number): number;
  cuDeviceGetAttribute(out: Out<number>, attr: number, dev: number): number;
  cuDeviceTotalMem(out: Out<number>, dev: number): number;
  cuDevicePrimaryCtxRetain(out: Out<Handle>, dev: number): number;
  cuDevicePrimaryCtxRelease(dev: number): number;
  cuCtxSetCurrent(ctx: Handle): number;
  cuCtxSynchronize(): number;
  cuMemGetInfo(free: Out<number>, total: Out<number>): number;
  cuMemAlloc(out: Out<number | bigint>, bytes: number): number;
  cuMemFree(ptr: bigint): number;
  cuMemcpyHtoD(dst: bigint, src: ArrayBufferView, bytes: number): number;
  cuMemcpyDtoH(dst: ArrayBufferView, src: bigint, bytes: number): number;
  cuMemcpyDtoD(dst: bigint, src: bigint, bytes: number): number;
  cuMemsetD8Async(dst: bigint, value: number, count: number, stream: Handle): number;
  cuMemAllocHost(out: Out<bigint>, bytes: number): number;
  cuMemFreeHost(ptr: bigint): number;
  cuMemcpyHtoDAsync(dst: bigint, src: bigint, bytes: number, stream: Handle): number;
  cuMemcpyDtoHAsync(dst: bigint, src: bigint, bytes: number, stream: Handle): number;
  cuModuleLoadData(out: Out<Handle>, image: Buffer): number;
  cuModuleUnload(mod: Handle): number;
  cuModuleGetFunction(out: Out<Handle>, mod: Handle, name: string): number;
  cuFuncSetAttribute(fn: Handle, attr: number, value: number): number;
  cuFuncGetAttribute(out: Out<number>, attr: number, fn: Handle): number;
  cuOccupancyMaxActiveBlocksPerMultiprocessor(out: Out<number>, fn: Handle, blockSize: number, dynamicSmem: number): number;
  cuLaunchKernel(fn: Handle, gx: number, gy: number, gz: number, bx: number, by: number, bz: number,
    smem: number, stream: Handle, params: Buffer[] | null, extra: null): number;
  /** Launch with attributes (config: a CUlaunchConfig in a Buffer, see launchConfigBuffer); absent on old drivers. */
  cuLaunchKernelEx?(config: Buffer, fn: Handle, params: Buffer[] | null, extra: null): number;
  /** Encode a TMA descriptor (cuda.h's cuTensorMapEncodeTiled; CUDA 12+ drivers, else absent). */
  cuTensorMapEncodeTiled?(map: Buffer, dtype: number, rank: number, address: bigint, dims: BigUint64Array,
    strides: BigUint64Array, box: Uint32Array, elementStrides: Uint32Array, interleave: number, swizzle: number,
    l2Promotion: number, oobFill: number): number;
  cuStreamCreate(out: Out<Handle>, flags: number): number;
  cuStreamDestroy(stream: Handle): number;
  cuStreamSynchronize(stream: Handle): number;
  cuEventCreate(out: Out<Handle>, flags: number): number;
  cuEventDestroy(ev: Handle): number;
  cuEventRecord(ev: Handle, stream: Handle): number;
  cuEventSynchronize(ev: Handle): number;
  cuEventElapsedTime(out: Out<number>, start: Handle, end: Handle): number;
  cuStreamBeginCapture(stream: Handle, mode: number): number;
  cuStreamEndCapture(stream: Handle, out: Out<Handle>): number;
  cuGraphInstantiate(out: Out<Handle>, graph: Handle, flags: number): number;
  cuGraphLaunch(exec: Handle, stream: Handle): number;
  cuGraphExecDestroy(exec: Handle): number;
  cuGraphDestroy(graph: Handle): number;
  cuGetErrorName(status: number, out: Out<string>): number;
  cuGetErrorString(status: number, out: Out<string>): number;
}

let cached: { api: CudaApi } | { error: string; tried: string[] } | undefined;

/** Load libcuda once; throws IntscaleError "no NVIDIA driver found (...)" when it is absent. */
export function cuda(): CudaApi {
  cached ??= loadCuda();
  if ('error' in cached) throw new IntscaleError(cached.error);
  return cached.api;
}

/** Like cuda(), but reports absence instead of throwing (for `intscale doctor`). */
export function tryCuda(): { api: CudaApi } | { error: string; tried: string[] } {
  cached ??= loadCuda();
  return cached;
}

function loadCuda(): { api: CudaApi } | { error: string; tried: string[] } {
  const found = loadLibrary(CUDA_LIBRARY_NAMES);
  if (!found.ok) {
    return { error: `no NVIDIA driver found (libcuda.so.1): ${found.reason}`, tried: found.tried };
  }
  try {
    return { api: declare(found.lib, found.path) };
  } catch (err) {
    return { error: `libcuda at ${found.path} lacks a needed function: ${(err as Error).message}`, tried: [found.path] };
  }
}

function declare(lib: LibraryHandle, path: string): CudaApi {
  const ctx = koffi.pointer('CUctx', koffi.opaque());
  const mod = koffi.pointer('CUmod', koffi.opaque());
  const fn = koffi.pointer('CUfunc', koffi.opaque());
  const stream = koffi.pointer('CUstream', koffi.opaque());
  const event = koffi.pointer('CUevent', koffi.opaque());
  const graph = koffi.pointer('CUgraph', koffi.opaque());
  const graphExec = koffi.pointer('CUgraphExec', koffi.opaque());
  const out = (t: unknown) => koffi.out(koffi.pointer(t as string));
  const f = (names: string | string[], result: string, args: unknown[]) =>
    funcAny(lib, Array.isArray(names) ? names : [names], result, args);
  const api = {
    path,
    cuInit: f('cuInit', 'int', ['uint']),
    cuDriverGetVersion: f('cuDriverGetVersion', 'int', [out('int')]),
    cuDeviceGetCount: f('cuDeviceGetCount', 'int', [out('int')]),
    cuDeviceGet: f('cuDeviceGet', 'int', [out('int'), 'int']),
    cuDeviceGetName: f('cuDeviceGetName', 'int', ['char *', 'int', 'int']),
    cuDeviceGetAttribute: f('cuDeviceGetAttribute', 'int', [out('int'), 'int', 'int']),
    cuDeviceTotalMem: f(['cuDeviceTotalMem_v2', 'cuDeviceTotalMem'], 'int', [out('size_t'), 'int']),
    cuDevicePrimaryCtxRetain: f('cuDevicePrimaryCtxRetain', 'int', [out(ctx), 'int']),
    cuDevicePrimaryCtxRelease: f(['cuDevicePrimaryCtxRelease_v2', 'cuDevicePrimaryCtxRelease'], 'int', ['int']),
    cuCtxSetCurrent: f('cuCtxSetCurrent', 'int', [ctx]),
    cuCtxSynchronize: f('cuCtxSynchronize', 'int', []),
    cuMemGetInfo: f(['cuMemGetInfo_v2', 'cuMemGetInfo'], 'int', [out('size_t'), out('size_t')]),
    cuMemAlloc: f(['cuMemAlloc_v2', 'cuMemAlloc'], 'int', [out('uint64_t'), 'size_t']),
    cuMemFree: f(['cuMemFree_v2', 'cuMemFree'], 'int', ['uint64_t']),
    cuMemcpyHtoD: f(['cuMemcpyHtoD_v2', 'cuMemcpyHtoD'], 'int', ['uint64_t', 'const void *', 'size_t']),
    cuMemcpyDtoH: f(['cuMemcpyDtoH_v2', 'cuMemcpyDtoH'], 'int', ['void *', 'uint64_t', 'size_t']),
    cuMemcpyDtoD: f(['cuMemcpyDtoD_v2', 'cuMemcpyDtoD'], 'int', ['uint64_t', 'uint64_t', 'size_t']),
    cuMemsetD8Async: f(['cuMemsetD8Async'], 'int', ['uint64_t', 'uchar', 'size_t', stream]),
    // Pinned host memory; host pointers are koffi bigints (offsets added on the JS side).
    cuMemAllocHost: f(['cuMemAllocHost_v2', 'cuMemAllocHost'], 'int', [out('void *'), 'size_t']),
    cuMemFreeHost: f('cuMemFreeHost', 'int', ['void *']),
    cuMemcpyHtoDAsync: f(['cuMemcpyHtoDAsync_v2', 'cuMemcpyHtoDAsync'], 'int', ['uint64_t', 'const void *', 'size_t', stream]),
    cuMemcpyDtoHAsync: f(['cuMemcpyDtoHAsync_v2', 'cuMemcpyDtoHAsync'], 'int', ['void *', 'uint64_t', 'size_t', stream]),
    cuModuleLoadData: f('cuModuleLoadData', 'int', [out(mod), 'const void *']),
    cuModuleUnload: f('cuModuleUnload', 'int', [mod]),
    cuModuleGetFunction: f('cuModuleGetFunction', 'int', [out(fn), mod, 'const char *']),
    cuFuncSetAttribute: f('cuFuncSetAttribute', 'int', [fn, 'int', 'int']),
    cuFuncGetAttribute: f('cuFuncGetAttribute', 'int', [out('int'), 'int', fn]),
    cuOccupancyMaxActiveBlocksPerMultiprocessor: f('cuOccupancyMaxActiveBlocksPerMultiprocessor', 'int', [out('int'), fn, 'int', 'size_t']),
    cuLaunchKernel: f('cuLaunchKernel', 'int',
      [fn, 'uint', 'uint', 'uint', 'uint', 'uint', 'uint', 'uint', stream, 'void **', 'void **']),
    cuLaunchKernelEx: optional(lib, 'cuLaunchKernelEx', 'int', ['void *', fn, 'void **', 'void **']),
    cuTensorMapEncodeTiled: optional(lib, 'cuTensorMapEncodeTiled', 'int',
      ['void *', 'int', 'uint', 'uint64_t', 'const uint64_t *', 'const uint64_t *', 'const uint32_t *', 'const uint32_t *', 'int', 'int', 'int', 'int']),
    cuStreamCreate: f('cuStreamCreate', 'int', [out(stream), 'uint']),
    cuStreamDestroy: f(['cuStreamDestroy_v2', 'cuStreamDestroy'], 'int', [stream]),
    cuStreamSynchronize: f('cuStreamSynchronize', 'int', [stream]),
    cuEventCreate: f('cuEventCreate', 'int', [out(event), 'uint']),
    cuEventDestroy: f(['cuEventDestroy_v2', 'cuEventDestroy'], 'int', [event]),
    cuEventRecord: f('cuEventRecord', 'int', [event, stream]),
    cuEventSynchronize: f('cuEventSynchronize', 'int', [event]),
    cuEventElapsedTime: f(['cuEventElapsedTime_v2', 'cuEventElapsedTime'], 'int', [out('float'), event, event]),
    cuStreamBeginCapture: f(['cuStreamBeginCapture_v2', 'cuStreamBeginCapture'], 'int', [stream, 'int']),
    cuStreamEndCapture: f('cuStreamEndCapture', 'int', [stream, out(graph)]),
    cuGraphInstantiate: f(['cuGraphInstantiateWithFlags'], 'int', [out(graphExec), graph, 'uint64_t']),
    cuGraphLaunch: f('cuGraphLaunch', 'int', [graphExec, stream]),
    cuGraphExecDestroy: f('cuGraphExecDestroy', 'int', [graphExec]),
    cuGraphDestroy: f('cuGraphDestroy', 'int', [graph]),
    cuGetErrorName: f('cuGetErrorName', 'int', ['int', out('const char *')]),
    cuGetErrorString: f('cuGetErrorString', 'int', ['int', out('const char *')]),
  };
  return api as unknown as CudaApi;
}

function optional(lib: LibraryHandle, name: string, result: string, args: unknown[]): unknown {
  try {
    return funcAny(lib, [name], result, args);
  } catch {
    return undefined;
  }
}

export const CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6;
/** sizeof(CUlaunchAttribute): id (4) + pad (4) + a 64-byte value union. */
const LAUNCH_ATTRIBUTE_BYTES = 72;
let pdlAttribute: { ptr: unknown; address: bigint } | undefined;

/**
 * A CUlaunchConfig (cuda.h: 7 uints, CUstream at 32, attrs at 40, numAttrs at 48; 56 bytes) whose
 * one attribute allows programmatic dependent launch: the kernel may start before its predecessor
 * in the stream finishes and must itself wait (griddepcontrol.wait) before reading its outputs.
 */
export function pdlLaunchConfig(grid: [number, number, number], block: [number, number, number], smem: number, stream: Handle): Buffer {
  if (!pdlAttribute) {
    const ptr = koffi.alloc('uint8', LAUNCH_ATTRIBUTE_BYTES);
    for (let o = 0; o < LAUNCH_ATTRIBUTE_BYTES; o += 4) koffi.encode(ptr, o, 'int', 0);
    koffi.encode(ptr, 0, 'int', CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION);
    koffi.encode(ptr, 8, 'int', 1);  // value.programmaticStreamSerializationAllowed
    pdlAttribute = { ptr, address: koffi.address(ptr) };
  }
  const b = Buffer.alloc(56);
  [...grid, ...block, smem].forEach((v, i) => b.writeUInt32LE(v, 4 * i));
  b.writeBigUInt64LE(stream === null ? 0n : koffi.address(stream), 32);
  b.writeBigUInt64LE(pdlAttribute.address, 40);
  b.writeUInt32LE(1, 48);
  return b;
}

/** The CUDA error name and description for a CUresult, e.g. "CUDA_ERROR_OUT_OF_MEMORY (out of memory)". */
export function cudaStatusString(status: number): string {
  const api = cuda();
  const name: Out<string> = [null];
  const text: Out<string> = [null];
  api.cuGetErrorName(status, name);
  api.cuGetErrorString(status, text);
  return `${name[0] ?? `CUresult ${status}`}${text[0] ? ` (${text[0]})` : ''}`;
}

/** A failed GPU library call: the message names the call and the library's status string. */
export class GpuCallError extends IntscaleError {
  constructor(readonly call: string, readonly status: number, statusText: string, detail = '') {
    super(`${call} failed: ${statusText}${detail ? `: ${detail}` : ''}`);
    this.name = 'GpuCallError';
  }
}

/** Throw GpuCallError unless `status` is CUDA_SUCCESS (0). */
export function check(status: number, call: string): void {
  if (status !== 0) throw new GpuCallError(call, status, cudaStatusString(status));
}
