// Device memory: DeviceBuffer (a cuMemAlloc'd range, freed back to a cache) and the caching
// allocator behind Gpu.alloc. Sizes round up to 512 B (small) or 2 MiB (≥ 1 MiB) bins; free()
// returns a block to its bin, alloc() reuses one of the same bin, and an out-of-memory alloc
// empties the cache and retries once. Also HostBuffer (page-locked host memory for async copies)
// and the range check the copies share. Nothing is ever freed implicitly (no finalizers).
import koffi from 'koffi';
import { fail } from '../core/errors.ts';
import { check, cuda, type Out } from './ffi/cuda.ts';

const SMALL_BIN = 512;
const LARGE_BIN = 2 << 20;
const CUDA_ERROR_OUT_OF_MEMORY = 2;

export class DeviceBuffer {
  #freed = false;
  constructor(
    /** The device address (CUdeviceptr). */
    readonly ptr: bigint,
    /** The size asked for, in bytes. */
    readonly bytes: number,
    /** The size of the block behind it (its cache bin). */
    readonly capacity: number,
    private readonly allocator: CachingAllocator,
  ) {}

  /** The device address `byteOffset` bytes in (checked against the size). */
  at(byteOffset: number): bigint {
    if (byteOffset < 0 || byteOffset > this.bytes) fail('DeviceBuffer.at', `offset ${byteOffset} outside ${this.bytes} bytes`);
    return this.ptr + BigInt(byteOffset);
  }

  get freed(): boolean {
    return this.#freed;
  }

  /** Give the block back to the allocator's cache (double free is an error). */
  free(): void {
    if (this.#freed) fail('DeviceBuffer.free', `buffer 0x${this.ptr.toString(16)} freed twice`);
    this.#freed = true;
    this.allocator.release(this.capacity, this.ptr);
  }
}

export class CachingAllocator {
  private readonly bins = new Map<number, bigint[]>();
  /** Bytes held by live buffers and by the cache. */
  liveBytes = 0;
  cachedBytes = 0;

  static binSize(bytes: number): number {
    const bin = bytes >= 1 << 20 ? LARGE_BIN : SMALL_BIN;
    return Math.max(bin, Math.ceil(bytes / bin) * bin);
  }

  alloc(bytes: number): DeviceBuffer {
    if (!Number.isSafeInteger(bytes) || bytes < 0) fail('Gpu.alloc', `bad size ${bytes}`);
    const capacity = CachingAllocator.binSize(bytes);
    const reused = this.bins.get(capacity)?.pop();
    if (reused !== undefined) {
      this.cachedBytes -= capacity;
      this.liveBytes += capacity;
      return new DeviceBuffer(reused, bytes, capacity, this);
    }
    const api = cuda();
    const out: Out<number | bigint> = [null];
    let status = api.cuMemAlloc(out, capacity);
    if (status === CUDA_ERROR_OUT_OF_MEMORY && this.cachedBytes > 0) {
      this.emptyCache();
      status = api.cuMemAlloc(out, capacity);
    }
    check(status, `cuMemAlloc(${capacity} bytes)`);
    this.liveBytes += capacity;
    return new DeviceBuffer(BigInt(out[0]!), bytes, capacity, this);
  }

  release(capacity: number, ptr: bigint): void {
    let bin = this.bins.get(capacity);
    if (!bin) this.bins.set(capacity, (bin = []));
    bin.push(ptr);
    this.liveBytes -= capacity;
    this.cachedBytes += capacity;
  }

  /** cuMemFree every cached block (live buffers stay). */
  emptyCache(): void {
    const api = cuda();
    for (const [capacity, ptrs] of this.bins) {
      for (const ptr of ptrs) check(api.cuMemFree(ptr), 'cuMemFree');
      this.cachedBytes -= capacity * ptrs.length;
    }
    this.bins.clear();
  }
}

/** A typed-array constructor HostBuffer.as() can view pinned memory through. */
export interface TypedArrayCtor<T> {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

/**
 * Page-locked (pinned) host memory, from Gpu.allocHost: the source or target of
 * copyToDeviceAsync / copyToHostAsync. `u8` and `as(Ctor)` view the memory itself (no copy).
 * After free() the memory is gone but views made earlier still point at it: never use a view
 * past free() (reading or writing it can crash the process). free() is idempotent.
 */
export class HostBuffer {
  #freed = false;
  #view: ArrayBuffer | undefined;
  constructor(
    /** The host address, as koffi hands pointers out (a bigint). */
    readonly ptr: bigint,
    /** The size in bytes (> 0). */
    readonly bytes: number,
    private readonly release: (ptr: bigint) => void,
  ) {}

  get freed(): boolean {
    return this.#freed;
  }

  /** The host address `byteOffset` bytes in (checked against the size). */
  at(byteOffset: number): bigint {
    if (this.#freed) fail('HostBuffer.at', `pinned buffer 0x${this.ptr.toString(16)} was freed`);
    if (byteOffset < 0 || byteOffset > this.bytes) fail('HostBuffer.at', `offset ${byteOffset} outside ${this.bytes} bytes`);
    return this.ptr + BigInt(byteOffset);
  }

  /** The whole buffer as bytes. */
  get u8(): Uint8Array {
    return this.as(Uint8Array);
  }

  /** The whole buffer as a typed array of `Ctor` (the size must be a multiple of its element size). */
  as<T>(Ctor: TypedArrayCtor<T>): T {
    if (this.#freed) fail('HostBuffer.as', `pinned buffer 0x${this.ptr.toString(16)} was freed`);
    const size = Ctor.BYTES_PER_ELEMENT;
    if (this.bytes % size !== 0) fail('HostBuffer.as', `${this.bytes} bytes are not a whole number of ${size}-byte elements`);
    this.#view ??= koffi.view(this.ptr, this.bytes);
    return new Ctor(this.#view, 0, this.bytes / size);
  }

  /** Give the memory back (a second call does nothing). */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.#view = undefined;
    this.release(this.ptr);
  }
}

/** What checkCopyRange needs of a buffer (DeviceBuffer and HostBuffer both fit). */
interface Sized {
  readonly bytes: number;
  readonly freed: boolean;
}

/** Fail (one line, naming `where`) unless `bytes` at the offsets fit both live buffers. */
export function checkCopyRange(where: string, bytes: number, dst: Sized, dstOffset: number, src: Sized, srcOffset: number): void {
  for (const [name, v] of [['size', bytes], ['destination offset', dstOffset], ['source offset', srcOffset]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) fail(where, `bad ${name} ${v}`);
  }
  if (dst.freed) fail(where, 'the destination buffer was freed');
  if (src.freed) fail(where, 'the source buffer was freed');
  if (dstOffset + bytes > dst.bytes) fail(where, `${bytes} bytes at ${dstOffset} do not fit in the ${dst.bytes}-byte destination`);
  if (srcOffset + bytes > src.bytes) fail(where, `${bytes} bytes at ${srcOffset} exceed the ${src.bytes}-byte source`);
}
