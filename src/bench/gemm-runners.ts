// The table of GEMM implementations `intscale bench gemm` measures: one entry per impl, each able
// to set up (weights in `copies` rotated copies, activations, output) for one (M, K, N) and then
// launch the GEMM on a stream, graph-capturable. Add an impl by adding one entry to RUNNERS.
import { f32ArrayToF16 } from '../core/dtype.ts';
import { Rng } from '../core/rng.ts';
import { CublasLtGemm } from '../gpu/gemm-baselines.ts';
import { checkW4Shape, type W4Tile } from '../gpu/kernels/w4-gemm-plan.ts';
import type { QuantMode } from '../core/modes.ts';
import type { DeviceBuffer, Gpu, Stream } from '../gpu/runtime.ts';
import { W4GemmLaunch } from '../gpu/kernels/w4-gemm-launch.ts';
import { f16GemvKernel, GROUPED_MAX_ROWS } from '../gpu/kernels/grouped-gemm.ts';

export const IMPLS = ['fp16', 'int8', 'w4a8-is', 'w4a8-fs', 'w4a8-pc', 'w4a16', 'read', 'fp16-gemv'] as const;
export type GemmImpl = (typeof IMPLS)[number];

export interface PreparedGemm {
  /** Which kernel runs (our W4 entry point, e.g. w4a8_gemm_is_g128_w), when known. */
  kernel?: string;
  /**
   * Launch one GEMM using weight copy `copy` (0 ≤ copy < copies). pdl: programmatic dependent
   * launch (our kernels; cuBLAS ignores it), as the engine's decode graphs use it.
   */
  launch(copy: number, stream: Stream, pdl?: boolean): void;
  destroy(): void;
}

export interface GemmRunner {
  impl: GemmImpl;
  /** Bytes one GEMM must move at least: weights (+ scales) + activations + output. */
  bytes(M: number, K: number, N: number): number;
  /** Bytes of one weight copy (sizes the rotation that keeps weights out of L2). */
  weightBytes(K: number, N: number): number;
  /** Why this impl cannot run (M, K, N), or undefined. */
  unsupported?(M: number, K: number, N: number): string | undefined;
  prepare(gpu: Gpu, M: number, K: number, N: number, copies: number): PreparedGemm;
}

/** Fill `buf` with a repeated random tile (uploaded once, then device-to-device copies). */
export function fillDevice(gpu: Gpu, buf: DeviceBuffer, tile: ArrayBufferView): void {
  const bytes = new Uint8Array(tile.buffer, tile.byteOffset, tile.byteLength);
  const src = gpu.upload(bytes);
  try {
    for (let off = 0; off < buf.bytes; off += bytes.length) {
      const n = Math.min(bytes.length, buf.bytes - off);
      gpu.copy(buf, src, n, off, 0);
    }
  } finally {
    src.free();
  }
}

const TILE = 1 << 20;

/** A device buffer of `bytes` random fp16 normals (std). */
export function randomF16(gpu: Gpu, bytes: number, std: number, seed: number): DeviceBuffer {
  const buf = gpu.alloc(bytes);
  fillDevice(gpu, buf, f32ArrayToF16(new Rng(seed).normals(Math.min(TILE, Math.ceil(bytes / 2)), std)));
  return buf;
}

/** A device buffer of `bytes` random int8 in [-127, 127] (or random bytes when `anyByte`). */
export function randomI8(gpu: Gpu, bytes: number, seed: number, anyByte = false): DeviceBuffer {
  const rng = new Rng(seed);
  const tile = Int8Array.from({ length: Math.min(TILE, bytes) }, () => (anyByte ? rng.int(-128, 127) : rng.int(-127, 127)));
  const buf = gpu.alloc(bytes);
  fillDevice(gpu, buf, tile);
  return buf;
}

function cublasRunner(impl: 'fp16' | 'int8'): GemmRunner {
  const inBytes = impl === 'fp16' ? 2 : 1;
  const outBytes = impl === 'fp16' ? 2 : 4;
  return {
    impl,
    bytes: (M, K, N) => inBytes * (N * K + M * K) + outBytes * M * N,
    weightBytes: (K, N) => inBytes * N * K,
    unsupported: (_M, K, N) => (impl === 'int8' && (K % 4 || N % 4) ? 'int8 needs K and N multiples of 4' : undefined),
    prepare(gpu, M, K, N, copies) {
      const gemm = new CublasLtGemm(gpu, impl, M, N, K);
      const make = (bytes: number, seed: number, std: number) =>
        (impl === 'fp16' ? randomF16(gpu, bytes, std, seed) : randomI8(gpu, bytes, seed));
      const x = make(M * K * inBytes, 1, 1);
      const w = make(N * K * inBytes * copies, 2, 0.02);
      const y = gpu.alloc(M * N * outBytes);
      const wBytes = N * K * inBytes;
      return {
        launch: (copy, stream) => gemm.run(x, w.at(copy * wBytes), y, stream),
        destroy: () => {
          gemm.destroy();
          for (const b of [x, w, y]) b.free();
        },
      };
    },
  };
}

/** Group size of the grouped W4 impls in the benchmark. */
export const BENCH_GROUP = 128;

/** Random device values of a typed-array kind (tile uploaded once, repeated). */
function randomTyped(gpu: Gpu, count: number, seed: number, make: (rng: Rng) => number, Arr: Int32ArrayConstructor | Float32ArrayConstructor | Int8ArrayConstructor): DeviceBuffer {
  const rng = new Rng(seed);
  const tile = new Arr(Math.min(TILE, count));
  for (let i = 0; i < tile.length; i++) tile[i] = make(rng);
  const buf = gpu.alloc(count * tile.BYTES_PER_ELEMENT);
  fillDevice(gpu, buf, tile);
  return buf;
}

/**
 * Weight + scale bytes of one W4 GEMM at the bench's group size: int4 weights, then IS int32 ŝ
 * [K/G, N] + int8 shifts [N], FS fp32 [K/G, N], W4A16 fp16 [K/G, N], or PC fp32 scales + int8 per row.
 */
export function w4WeightBytes(mode: QuantMode, K: number, N: number): number {
  const scaleBytes = mode === 'w4a8-pc' ? 5 * N
    : (K / BENCH_GROUP) * N * (mode === 'w4a16' ? 2 : 4) + (mode === 'w4a8-is' ? N : 0);
  return N * K / 2 + scaleBytes;
}

function w4Runner(kind: QuantMode, force: W4Force = {}): GemmRunner {
  const impl = kind;
  const a16 = kind === 'w4a16';
  return {
    impl,
    bytes: (M, K, N) => w4WeightBytes(kind, K, N) + M * K * (a16 ? 2 : 1) + (a16 ? 0 : 4 * M) + 2 * M * N,
    weightBytes: (K, N) => w4WeightBytes(kind, K, N),
    unsupported: (M, K, N) => {
      try {
        checkW4Shape(M, N, K);
        return undefined;
      } catch (err) {
        return (err as Error).message;
      }
    },
    prepare(gpu, M, K, N, copies) {
      const launch = new W4GemmLaunch(gpu, kind, BENCH_GROUP, M, N, K, force);
      const wBytes = N * K / 2;
      const groups = kind === 'w4a8-pc' ? 1 : K / BENCH_GROUP;
      const wp = randomI8(gpu, wBytes * copies, 3, true);
      const a = a16 ? randomF16(gpu, M * K * 2, 1, 4) : randomI8(gpu, M * K, 4);
      const sx = randomTyped(gpu, M, 5, (r) => 0.01 + r.next() * 0.05, Float32Array);
      const out = gpu.alloc(M * N * 2);
      // Per copy: group scales [K/G, N] (IS int32, FS fp32, W4A16 fp16) and channel values [N].
      const gElems = groups * N;
      const gBytesEach = kind === 'w4a8-pc' ? 0 : gElems * (a16 ? 2 : 4);
      const gscales = kind === 'w4a8-is' ? randomTyped(gpu, gElems * copies, 6, (r) => r.int(1, 400), Int32Array)
        : kind === 'w4a8-fs' ? randomTyped(gpu, gElems * copies, 6, (r) => 1e-3 * (1 + r.next()), Float32Array)
        : kind === 'w4a16' ? randomF16(gpu, gElems * copies * 2, 1e-3, 6) : undefined;
      const chan = kind === 'w4a8-is' ? randomTyped(gpu, N, 7, (r) => r.int(8, 16), Int8Array)
        : kind === 'w4a8-pc' ? randomTyped(gpu, N, 7, (r) => 1e-3 * (1 + r.next()), Float32Array) : undefined;
      return {
        kernel: launch.plan.entry,
        launch: (copy, stream, pdl) => launch.launch({
          a, sx, wp: wp.at(copy * wBytes), gscales: gscales?.at(copy * gBytesEach), chan, out,
        }, stream, pdl),
        destroy: () => {
          launch.destroy();
          for (const b of [wp, a, sx, out, gscales, chan]) b?.free();
        },
      };
    },
  };
}

/**
 * The `read` row: a streaming read (src/gpu/kernels/stream_read.cu) of exactly the W4A8-IS
 * kernel's weight + scale bytes, rotated and timed like the GEMMs: the memory roofline of each
 * small-M row. It reads the weights before pdl_wait, as the W4 kernels should.
 */
function readRunner(): GemmRunner {
  return {
    impl: 'read',
    bytes: (_M, K, N) => w4WeightBytes('w4a8-is', K, N),
    weightBytes: (K, N) => w4WeightBytes('w4a8-is', K, N),
    prepare(gpu, _M, K, N, copies) {
      const kernel = gpu.compile('src/gpu/kernels/stream_read.cu').fn('stream_read');
      const bytes = Math.ceil(w4WeightBytes('w4a8-is', K, N) / 16) * 16;
      const buf = randomI8(gpu, bytes * copies, 8, true);
      const blocks = 8 * gpu.smCount;
      const sink = gpu.alloc(blocks * 4);
      return {
        kernel: 'stream_read',
        launch: (copy, stream, pdl) => kernel.launch({ grid: [blocks, 1, 1], block: [256, 1, 1], smem: 0, stream, pdl },
          [{ ptr: buf.at(copy * bytes) }, { u64: bytes / 16 }, { ptr: sink }]),
        destroy: () => {
          buf.free();
          sink.free();
        },
      };
    },
  };
}

/**
 * The `fp16-gemv` row: f16_gemv.cu's dense entry (M ≤ 16), the kernel the engine's FP16 mixture of
 * experts runs grouped, so its FP16 baseline can be held against cuBLAS fp16 on the same shapes.
 */
function f16GemvRunner(): GemmRunner {
  return {
    impl: 'fp16-gemv',
    bytes: (M, K, N) => 2 * (N * K + M * K + M * N),
    weightBytes: (K, N) => 2 * N * K,
    unsupported: (M, K, N) => (M > GROUPED_MAX_ROWS || N % 16 || K % 32 ? `f16_gemv runs M <= ${GROUPED_MAX_ROWS}, N % 16 == 0, K % 32 == 0` : undefined),
    prepare(gpu, M, K, N, copies) {
      const entry = M <= 8 ? 'f16_gemv_v8' : 'f16_gemv_v16';
      const { kernel, rowBlocks } = f16GemvKernel(gpu, entry);
      const x = randomF16(gpu, M * K * 2, 1, 1), w = randomF16(gpu, N * K * 2 * copies, 0.02, 2), y = gpu.alloc(M * N * 2);
      return {
        kernel: entry,
        launch: (copy, stream, pdl) => kernel.launch({ grid: [rowBlocks(N), 1, 1], block: [256, 1, 1], smem: 0, stream, pdl },
          [{ ptr: x }, { ptr: w.at(copy * N * K * 2) }, { ptr: 0n }, { ptr: y }, { i32: M }, { i32: N }, { i32: K }]),
        destroy: () => { for (const b of [x, w, y]) b.free(); },
      };
    },
  };
}

/** A tile and/or split-K factor forced on the W4 runners instead of the planner's choice. */
export interface W4Force {
  tile?: W4Tile;
  splits?: number;
}

/** The W4 runners with the tile and/or split-K forced (rows that cannot run so are reported with a note). */
export function w4RunnersForced(force: W4Force): GemmRunner[] {
  return [w4Runner('w4a8-is', force), w4Runner('w4a8-fs', force), w4Runner('w4a8-pc', force), w4Runner('w4a16', force)];
}

/** Every impl this build can run, in table order. */
export const RUNNERS: GemmRunner[] = [
  cublasRunner('fp16'), cublasRunner('int8'),
  w4Runner('w4a8-is'), w4Runner('w4a8-fs'), w4Runner('w4a8-pc'), w4Runner('w4a16'),
  readRunner(), f16GemvRunner(),
];
