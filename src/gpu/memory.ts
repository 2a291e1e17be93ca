// Device memory: DeviceBuffer (a cuMemAlloc'd range, freed back to a cache) and the caching
// allocator behind Gpu.alloc. Sizes round up to 512 B (small) or 2 MiB (≥ 1 MiB) bins; free()
// returns a block to its bin, alloc() reuses one of the same bin, and an out-of-memory alloc
// empties the cache and retries once. Nothing is ever freed implicitly (no finalizers).
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
