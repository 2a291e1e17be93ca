// The GPU runtime every GPU file builds on: one CUDA device (primary context), the caching
// allocator, pinned host memory with async copies, NVRTC modules and kernel launches, streams,
// events and CUDA graphs. Thin over the koffi declarations in ffi/; every CUDA call is checked
// (errors name the call and the status).
//
// Usage (what kernel wrappers do):
//   const gpu = Gpu.open();                          // IntscaleError "no GPU: <reason>" without one
//   const mod = gpu.compile('src/gpu/kernels/x.cu', { defines: { GROUP: 128 } });
//   const k = mod.fn('my_kernel');                   // extern "C" __global__ entry point
//   const x = gpu.upload(new Float32Array(n)); const y = gpu.alloc(n * 4);
//   k.launch({ grid: [blocks], block: [256], smem: 0, stream }, [{ ptr: x }, { ptr: y }, { i32: n }]);
//   gpu.download(y, new Float32Array(n));            // synchronous; waits for prior work
//   x.free(); y.free();                              // back to the allocator's cache
// Pinned staging: `const h = gpu.allocHost(n); h.u8.set(bytes); gpu.copyToDeviceAsync(d, h, stream);
// ... gpu.copyToHostAsync(h, d, stream); stream.sync(); h.free();` (h's memory must stay untouched
// until the stream has run the copy).
// Graphs: `const g = gpu.capture(stream, () => { ...launches on stream... }); g.launch(stream);`
// Timing: `a.record(s); ...; b.record(s); b.sync(); b.elapsedMsSince(a)`.
// Streams are blocking (they order with the legacy default stream), so upload/download/memset
// without a stream see all earlier work.
import { IntscaleError, fail } from '../core/errors.ts';
import {
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
  CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
  CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, CU_EVENT_DEFAULT, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES,
  CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, CU_FUNC_ATTRIBUTE_NUM_REGS, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
  CU_STREAM_CAPTURE_MODE_RELAXED, check, cuda, pdlLaunchConfig, tryCuda, type CudaApi, type Handle, type Out,
} from './ffi/cuda.ts';
import { compileFile, compileSource, type CompileOptions, type CompiledCubin } from './compile.ts';
import { CachingAllocator, DeviceBuffer, HostBuffer, checkCopyRange } from './memory.ts';
import { encodeTensorMap2d, type TensorMap2dSpec } from './tensor-map.ts';

export { DeviceBuffer, HostBuffer } from './memory.ts';
export type { CompileOptions } from './compile.ts';

/** A kernel argument, passed by value in the order of the kernel's parameters. */
export type KernelArg =
  | { ptr: DeviceBuffer | bigint }
  | { i32: number }
  | { u32: number }
  | { f32: number }
  | { u64: bigint | number }
  | { i64: bigint | number }
  /** A by-value struct parameter (e.g. a CUtensorMap from tensorMap2d), its bytes as laid out. */
  | { bytes: Buffer };

export type Dim3 = number | [number, number?, number?];

export interface LaunchConfig {
  grid: Dim3;
  block: Dim3;
  /** Dynamic shared memory in bytes (past the 48 KiB default, the kernel's limit is raised automatically). */
  smem?: number;
  /** Default: the legacy default stream. */
  stream?: Stream;
  /**
   * Programmatic dependent launch (sm_90+, where the driver has cuLaunchKernelEx): the kernel may
   * start while its predecessor finishes. Only for kernels that pdl_wait (ptx.cuh) before reading
   * what earlier kernels wrote.
   */
  pdl?: boolean;
}

const DEFAULT_DYNAMIC_SMEM_LIMIT = 48 * 1024;

export class Gpu {
  private static readonly opened = new Map<number, Gpu>();
  private readonly allocator = new CachingAllocator();
  private readonly modules = new Map<string, Module>();

  private constructor(
    readonly ordinal: number,
    private readonly api: CudaApi,
    readonly context: Handle,
    readonly name: string,
    readonly cc: [number, number],
    readonly smCount: number,
    readonly totalMemBytes: number,
    readonly l2Bytes: number,
    readonly maxSmemPerBlock: number,
    readonly driverVersion: number,
  ) {}

  /** 'sm_90a' on Hopper (cc 9.0, for wgmma/TMA), otherwise `sm_${major}${minor}`. */
  get arch(): string {
    return this.cc[0] === 9 && this.cc[1] === 0 ? 'sm_90a' : `sm_${this.cc[0]}${this.cc[1]}`;
  }

  /** Open device `ordinal` (once per process; later calls return the same Gpu). */
  static open(ordinal = 0): Gpu {
    const existing = Gpu.opened.get(ordinal);
    if (existing) return existing;
    const loaded = tryCuda();
    if ('error' in loaded) throw new IntscaleError(`no GPU: ${loaded.error}`);
    const api = loaded.api;
    const noGpu = (call: string, status: number) => {
      let text = `CUresult ${status}`;
      try { text = describe(status); } catch { /* keep the number */ }
      throw new IntscaleError(`no GPU: ${call} failed: ${text}`);
    };
    let status = api.cuInit(0);
    if (status !== 0) noGpu('cuInit', status);
    const count: Out<number> = [null];
    status = api.cuDeviceGetCount(count);
    if (status !== 0) noGpu('cuDeviceGetCount', status);
    if (!count[0]) throw new IntscaleError('no GPU: the driver sees no CUDA device');
    if (ordinal < 0 || ordinal >= count[0]) fail('Gpu.open', `device ${ordinal} does not exist (${count[0]} found)`);
    const dev: Out<number> = [null];
    check(api.cuDeviceGet(dev, ordinal), 'cuDeviceGet');
    const d = dev[0]!;
    const attr = (a: number, what: string) => {
      const out: Out<number> = [null];
      check(api.cuDeviceGetAttribute(out, a, d), `cuDeviceGetAttribute(${what})`);
      return out[0]!;
    };
    const nameBuf = Buffer.alloc(256);
    check(api.cuDeviceGetName(nameBuf, nameBuf.length, d), 'cuDeviceGetName');
    const mem: Out<number> = [null];
    check(api.cuDeviceTotalMem(mem, d), 'cuDeviceTotalMem');
    const version: Out<number> = [null];
    check(api.cuDriverGetVersion(version), 'cuDriverGetVersion');
    const ctx: Out<Handle> = [null];
    check(api.cuDevicePrimaryCtxRetain(ctx, d), 'cuDevicePrimaryCtxRetain');
    check(api.cuCtxSetCurrent(ctx[0]), 'cuCtxSetCurrent');
    const gpu = new Gpu(ordinal, api, ctx[0], nameBuf.toString('utf8').replace(/\0.*$/s, ''),
      [attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 'cc major'), attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 'cc minor')],
      attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 'SM count'), Number(mem[0]),
      attr(CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, 'L2 size'), attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, 'smem optin'),
      version[0]!);
    Gpu.opened.set(ordinal, gpu);
    return gpu;
  }

  /** Why Gpu.open() would fail, or undefined when a GPU is usable (for test skips). */
  static unavailableReason(): string | undefined {
    try {
      Gpu.open();
      return undefined;
    } catch (err) {
      if (err instanceof IntscaleError) return err.message;
      throw err;
    }
  }

  // ---- memory ----------------------------------------------------------------------------

  /** Device memory from the caching allocator (contents undefined). */
  alloc(bytes: number): DeviceBuffer {
    return this.allocator.alloc(bytes);
  }

  /** A new buffer holding a copy of `data`. */
  upload(data: ArrayBufferView): DeviceBuffer {
    const buf = this.alloc(data.byteLength);
    this.copyToDevice(buf, data);
    return buf;
  }

  /** Copy host `data` into `buf` at `byteOffset` (synchronous). */
  copyToDevice(buf: DeviceBuffer, data: ArrayBufferView, byteOffset = 0): void {
    if (byteOffset + data.byteLength > buf.bytes) {
      fail('Gpu.copyToDevice', `${data.byteLength} bytes at ${byteOffset} do not fit in a ${buf.bytes}-byte buffer`);
    }
    if (data.byteLength === 0) return;
    check(this.api.cuMemcpyHtoD(buf.at(byteOffset), data, data.byteLength), 'cuMemcpyHtoD');
  }

  /** Copy the start of `buf` into `out` (out.byteLength bytes; waits for earlier work) and return `out`. */
  download<T extends ArrayBufferView>(buf: DeviceBuffer, out: T, byteOffset = 0): T {
    if (byteOffset + out.byteLength > buf.bytes) {
      fail('Gpu.download', `${out.byteLength} bytes at ${byteOffset} exceed a ${buf.bytes}-byte buffer`);
    }
    if (out.byteLength === 0) return out;
    check(this.api.cuMemcpyDtoH(out, buf.at(byteOffset), out.byteLength), 'cuMemcpyDtoH');
    return out;
  }

  /** Device-to-device copy of `bytes` bytes (synchronous with the default stream's order). */
  copy(dst: DeviceBuffer, src: DeviceBuffer, bytes = Math.min(dst.bytes, src.bytes), dstOffset = 0, srcOffset = 0): void {
    if (dstOffset + bytes > dst.bytes || srcOffset + bytes > src.bytes) fail('Gpu.copy', `${bytes} bytes exceed a buffer`);
    check(this.api.cuMemcpyDtoD(dst.at(dstOffset), src.at(srcOffset), bytes), 'cuMemcpyDtoD');
  }

  /** `bytes` bytes of page-locked host memory (contents undefined; free() it when done). */
  allocHost(bytes: number): HostBuffer {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) fail('Gpu.allocHost', `bad size ${bytes} (a positive whole number of bytes)`);
    const out: Out<bigint> = [null];
    check(this.api.cuMemAllocHost(out, bytes), `cuMemAllocHost(${bytes} bytes)`);
    const api = this.api;
    return new HostBuffer(BigInt(out[0]!), bytes, (ptr) => check(api.cuMemFreeHost(ptr), 'cuMemFreeHost'));
  }

  /** Queue a copy of pinned `src` into `dst` on `stream` (returns at once; sync the stream before reusing `src`). */
  copyToDeviceAsync(dst: DeviceBuffer, src: HostBuffer, stream: Stream, bytes = Math.min(dst.bytes, src.bytes),
    dstOffset = 0, srcOffset = 0): void {
    checkCopyRange('Gpu.copyToDeviceAsync', bytes, dst, dstOffset, src, srcOffset);
    if (bytes === 0) return;
    check(this.api.cuMemcpyHtoDAsync(dst.at(dstOffset), src.at(srcOffset), bytes, stream.handle), 'cuMemcpyHtoDAsync');
  }

  /** Queue a copy of `src` into pinned `dst` on `stream` (returns at once; sync the stream before reading `dst`). */
  copyToHostAsync(dst: HostBuffer, src: DeviceBuffer, stream: Stream, bytes = Math.min(dst.bytes, src.bytes),
    dstOffset = 0, srcOffset = 0): void {
    checkCopyRange('Gpu.copyToHostAsync', bytes, dst, dstOffset, src, srcOffset);
    if (bytes === 0) return;
    check(this.api.cuMemcpyDtoHAsync(dst.at(dstOffset), src.at(srcOffset), bytes, stream.handle), 'cuMemcpyDtoHAsync');
  }

  /** Fill every byte of `buf` with `byte` (e.g. 0xff to poison outputs before a test). */
  memset(buf: DeviceBuffer, byte: number, stream?: Stream): void {
    check(this.api.cuMemsetD8Async(buf.ptr, byte & 0xff, buf.bytes, stream?.handle ?? null), 'cuMemsetD8Async');
    if (!stream) this.sync();
  }

  /** Free every cached (not live) block. */
  emptyCache(): void {
    this.allocator.emptyCache();
  }

  memInfo(): { freeBytes: number; totalBytes: number; liveBytes: number; cachedBytes: number } {
    const free: Out<number> = [null];
    const total: Out<number> = [null];
    check(this.api.cuMemGetInfo(free, total), 'cuMemGetInfo');
    return { freeBytes: Number(free[0]), totalBytes: Number(total[0]),
      liveBytes: this.allocator.liveBytes, cachedBytes: this.allocator.cachedBytes };
  }

  // ---- modules ---------------------------------------------------------------------------

  /** A TMA descriptor for a kernel parameter ({ bytes }): see tensor-map.ts. */
  tensorMap2d(spec: TensorMap2dSpec): Buffer {
    return encodeTensorMap2d(this.api, spec);
  }

  /** Compile a .cu file with NVRTC for this GPU's arch (cached on disk and per process) and load it. */
  compile(sourceFile: string, opts: CompileOptions = {}): Module {
    const full = { ...opts, arch: opts.arch ?? this.arch };
    const key = JSON.stringify(['file', sourceFile, full]);
    let mod = this.modules.get(key);
    if (!mod) {
      mod = this.loadCubin(compileFile(sourceFile, full), sourceFile);
      this.modules.set(key, mod);
    }
    return mod;
  }

  /** Like compile(), from source text (`name` appears in errors and line info). */
  compileSource(source: string, name: string, opts: CompileOptions = {}): Module {
    const full = { ...opts, arch: opts.arch ?? this.arch };
    const key = JSON.stringify(['src', name, source, full]);
    let mod = this.modules.get(key);
    if (!mod) {
      mod = this.loadCubin(compileSource(source, name, full), name);
      this.modules.set(key, mod);
    }
    return mod;
  }

  private loadCubin(compiled: CompiledCubin, name: string): Module {
    const out: Out<Handle> = [null];
    check(this.api.cuModuleLoadData(out, compiled.cubin), `cuModuleLoadData(${name})`);
    return new Module(this.api, out[0], name, this.maxSmemPerBlock);
  }

  // ---- streams, events, graphs -----------------------------------------------------------

  /** A new (blocking) stream. */
  stream(): Stream {
    const out: Out<Handle> = [null];
    check(this.api.cuStreamCreate(out, 0), 'cuStreamCreate');
    return new Stream(this.api, out[0]);
  }

  /** A new timing event. */
  event(): GpuEvent {
    const out: Out<Handle> = [null];
    check(this.api.cuEventCreate(out, CU_EVENT_DEFAULT), 'cuEventCreate');
    return new GpuEvent(this.api, out[0]);
  }

  /** Capture the launches `work` issues on `stream` into an instantiated CUDA graph. */
  capture(stream: Stream, work: () => void): Graph {
    stream.beginCapture();
    try {
      work();
    } catch (err) {
      try { stream.endCapture().destroy(); } catch { /* the original error matters */ }
      throw err;
    }
    return stream.endCapture();
  }

  /** Wait for all work on the device. */
  sync(): void {
    check(this.api.cuCtxSynchronize(), 'cuCtxSynchronize');
  }
}

export class Module {
  private readonly kernels = new Map<string, Kernel>();
  constructor(private readonly api: CudaApi, readonly handle: Handle, readonly name: string,
    private readonly maxSmem: number) {}

  /** The extern "C" __global__ function `name` (error names the module when absent). */
  fn(name: string): Kernel {
    let k = this.kernels.get(name);
    if (!k) {
      const out: Out<Handle> = [null];
      check(this.api.cuModuleGetFunction(out, this.handle, name), `cuModuleGetFunction(${this.name}: ${name})`);
      k = new Kernel(this.api, out[0], name, this.maxSmem);
      this.kernels.set(name, k);
    }
    return k;
  }
}

export class Kernel {
  /** Static (__shared__) bytes of the kernel; static + dynamic must fit the block's limit. */
  readonly staticSmem: number;
  /** Dynamic bytes allowed without (or after) cuFuncSetAttribute. */
  private dynamicSmemLimit: number;
  constructor(private readonly api: CudaApi, readonly handle: Handle, readonly name: string,
    private readonly maxSmem: number) {
    const out: Out<number> = [null];
    check(api.cuFuncGetAttribute(out, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, handle), `cuFuncGetAttribute(${name}, static smem)`);
    this.staticSmem = out[0]!;
    // Without opt-in, static + dynamic shared memory must stay below 48 KiB.
    this.dynamicSmemLimit = Math.max(0, DEFAULT_DYNAMIC_SMEM_LIMIT - this.staticSmem - 1);
  }

  /** Registers and local (spill) bytes per thread, from the loaded cubin. */
  get resources(): { registers: number; localBytes: number } {
    const get = (a: number) => {
      const out: Out<number> = [null];
      check(this.api.cuFuncGetAttribute(out, a, this.handle), `cuFuncGetAttribute(${this.name})`);
      return out[0]!;
    };
    return { registers: get(CU_FUNC_ATTRIBUTE_NUM_REGS), localBytes: get(CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES) };
  }

  /** Blocks of `threads` threads and `smem` dynamic bytes that fit on one SM at once (the occupancy calculator). */
  residentBlocks(threads: number, smem: number): number {
    this.allowDynamicSmem(smem);
    const out: Out<number> = [null];
    check(this.api.cuOccupancyMaxActiveBlocksPerMultiprocessor(out, this.handle, threads, smem),
      `cuOccupancyMaxActiveBlocksPerMultiprocessor(${this.name}, ${threads} threads, smem ${smem})`);
    return out[0]!;
  }

  /** Opt in to `smem` dynamic bytes where that is above the default limit. */
  private allowDynamicSmem(smem: number): void {
    if (smem <= this.dynamicSmemLimit) return;
    if (smem + this.staticSmem > this.maxSmem) {
      fail(this.name, `asks for ${smem} bytes of dynamic shared memory (+ ${this.staticSmem} static); the GPU allows ${this.maxSmem}`);
    }
    check(this.api.cuFuncSetAttribute(this.handle, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem),
      `cuFuncSetAttribute(${this.name}, max dynamic smem ${smem})`);
    this.dynamicSmemLimit = smem;
  }

  /** Launch asynchronously on cfg.stream (or the default stream). */
  launch(cfg: LaunchConfig, args: KernelArg[]): void {
    const [gx, gy, gz] = dim3(cfg.grid, 'grid');
    const [bx, by, bz] = dim3(cfg.block, 'block');
    const smem = cfg.smem ?? 0;
    this.allowDynamicSmem(smem);
    const stream = cfg.stream?.handle ?? null;
    if (cfg.pdl && this.api.cuLaunchKernelEx) {
      check(this.api.cuLaunchKernelEx(pdlLaunchConfig([gx, gy, gz], [bx, by, bz], smem, stream), this.handle, args.map(encodeArg), null),
        `cuLaunchKernelEx(${this.name}, grid ${gx}x${gy}x${gz}, block ${bx}x${by}x${bz}, smem ${smem}, PDL)`);
      return;
    }
    check(this.api.cuLaunchKernel(this.handle, gx, gy, gz, bx, by, bz, smem, stream,
      args.map(encodeArg), null), `cuLaunchKernel(${this.name}, grid ${gx}x${gy}x${gz}, block ${bx}x${by}x${bz}, smem ${smem})`);
  }
}

export class Stream {
  constructor(private readonly api: CudaApi, readonly handle: Handle) {}
  sync(): void {
    check(this.api.cuStreamSynchronize(this.handle), 'cuStreamSynchronize');
  }
  beginCapture(): void {
    check(this.api.cuStreamBeginCapture(this.handle, CU_STREAM_CAPTURE_MODE_RELAXED), 'cuStreamBeginCapture');
  }
  /** End capture and instantiate the captured graph. */
  endCapture(): Graph {
    const graph: Out<Handle> = [null];
    check(this.api.cuStreamEndCapture(this.handle, graph), 'cuStreamEndCapture');
    const exec: Out<Handle> = [null];
    const status = this.api.cuGraphInstantiate(exec, graph[0], 0);
    if (status !== 0) this.api.cuGraphDestroy(graph[0]);
    check(status, 'cuGraphInstantiate');
    return new Graph(this.api, graph[0], exec[0]);
  }
  destroy(): void {
    check(this.api.cuStreamDestroy(this.handle), 'cuStreamDestroy');
  }
}

export class GpuEvent {
  constructor(private readonly api: CudaApi, readonly handle: Handle) {}
  record(stream?: Stream): void {
    check(this.api.cuEventRecord(this.handle, stream?.handle ?? null), 'cuEventRecord');
  }
  sync(): void {
    check(this.api.cuEventSynchronize(this.handle), 'cuEventSynchronize');
  }
  /** Milliseconds between `start` and this event (both recorded; this one completed). */
  elapsedMsSince(start: GpuEvent): number {
    const out: Out<number> = [null];
    check(this.api.cuEventElapsedTime(out, start.handle, this.handle), 'cuEventElapsedTime');
    return out[0]!;
  }
  destroy(): void {
    check(this.api.cuEventDestroy(this.handle), 'cuEventDestroy');
  }
}

export class Graph {
  constructor(private readonly api: CudaApi, readonly graph: Handle, readonly exec: Handle) {}
  launch(stream?: Stream): void {
    check(this.api.cuGraphLaunch(this.exec, stream?.handle ?? null), 'cuGraphLaunch');
  }
  destroy(): void {
    check(this.api.cuGraphExecDestroy(this.exec), 'cuGraphExecDestroy');
    check(this.api.cuGraphDestroy(this.graph), 'cuGraphDestroy');
  }
}

function describe(status: number): string {
  const api = cuda();
  const name: Out<string> = [null];
  api.cuGetErrorName(status, name);
  return name[0] ?? `CUresult ${status}`;
}

function dim3(d: Dim3, what: string): [number, number, number] {
  const v: [number, number, number] = typeof d === 'number' ? [d, 1, 1] : [d[0], d[1] ?? 1, d[2] ?? 1];
  for (const x of v) if (!Number.isInteger(x) || x < 1) fail('Kernel.launch', `bad ${what} dimension ${JSON.stringify(d)}`);
  return v;
}

/** Each argument's value in its own 8-byte slot; cuLaunchKernel gets the array of slot pointers. */
function encodeArg(arg: KernelArg): Buffer {
  if ('bytes' in arg) return arg.bytes;
  const b = Buffer.alloc(8);
  if ('ptr' in arg) b.writeBigUInt64LE(typeof arg.ptr === 'bigint' ? arg.ptr : arg.ptr.ptr);
  else if ('i32' in arg) b.writeInt32LE(arg.i32);
  else if ('u32' in arg) b.writeUInt32LE(arg.u32);
  else if ('f32' in arg) b.writeFloatLE(arg.f32);
  else if ('u64' in arg) b.writeBigUInt64LE(BigInt(arg.u64));
  else b.writeBigInt64LE(BigInt(arg.i64));
  return b;
}
