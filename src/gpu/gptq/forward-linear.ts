// The calibration forward's linears on the GPU (layer-forward.ts linearRows' contract): y[rows, N] =
// x[rows, K]·Wᵀ (+ bias) with fp32 inputs and outputs, as cuBLASLt fp32 GEMMs (the CPU's fp32 product
// in another summation order; no fp16 rounding of the activations), x uploaded and y downloaded in
// row chunks of at most CHUNK_BYTES. The weight is uploaded on every call (no cache keyed by array
// identity: the pipeline rescales some weights in place between uses).
import { fail } from '../../core/errors.ts';
import type { DeviceBuffer, Gpu } from '../runtime.ts';
import type { LtMatmul } from './lt-matmul.ts';

/** Device bytes of one chunk's x and y together. */
const CHUNK_BYTES = 256 << 20;

export function deviceLinearRows(gpu: Gpu, mm: LtMatmul, x: Float32Array, rows: number, K: number, w: Float32Array, N: number,
  bias?: Float32Array, out?: Float32Array): Float32Array {
  if (w.length !== N * K) fail('calibration', `weight has ${w.length} values, expected ${N}x${K}`);
  if (out && out.length !== rows * N) fail('calibration', `output has ${out.length} values, expected ${rows}x${N}`);
  if (x.length < rows * K) fail('calibration', `input has ${x.length} values, expected ${rows}x${K}`);
  const y = out ?? new Float32Array(rows * N);
  if (rows === 0) return y;
  const R = Math.max(1, Math.min(rows, Math.floor(CHUNK_BYTES / (4 * (K + N)))));
  const bufs: DeviceBuffer[] = [];
  try {
    const wd = gpu.upload(w);
    bufs.push(wd);
    const xd = gpu.alloc(R * K * 4), yd = gpu.alloc(R * N * 4);
    bufs.push(xd, yd);
    for (let r0 = 0; r0 < rows; r0 += R) {
      const m = Math.min(R, rows - r0);
      gpu.copyToDevice(xd, x.subarray(r0 * K, (r0 + m) * K));
      mm.run({ m, n: N, k: K, transA: false, transB: true, lda: K, ldb: K, ldc: N, inType: 'f32' }, xd.ptr, wd.ptr, yd.ptr, 1, 0);
      gpu.download(yd, y.subarray(r0 * N, (r0 + m) * N));
    }
  } finally {
    for (const b of bufs) b.free();
  }
  if (bias) for (let r = 0; r < rows; r++) for (let n = 0; n < N; n++) y[r * N + n]! += bias[n]!;
  return y;
}
