// The table of GEMM implementations `intscale bench gemm` measures: one entry per impl, each able
// to set up (weights in `copies` rotated copies, activations, output) for one (M, K, N) and then
// launch the GEMM on a stream, graph-capturable. Add an impl by adding one entry to RUNNERS.
import { f32ArrayToF16 } from '../core/dtype.ts';
import { Rng } from '../core/rng.ts';
import { CublasLtGemm } from '../gpu/gemm-baselines.ts';
import type { DeviceBuffer, Gpu, Stream } from '../gpu/runtime.ts';

export const IMPLS = ['fp16', 'int8', 'w4a8_is', 'w4a8_fs', 'w4a8_pc', 'w4a16'] as const;
export type GemmImpl = (typeof IMPLS)[number];

export interface PreparedGemm {
  /** Launch one GEMM using weight copy `copy` (0 ≤ copy < copies). */
  launch(copy: number, stream: Stream): void;
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

/** Every impl this build can run (the W4 kernels join when their wrappers exist). */
export const RUNNERS: GemmRunner[] = [cublasRunner('fp16'), cublasRunner('int8')];
